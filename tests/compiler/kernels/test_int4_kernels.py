"""The int4-weight convolutions (runtime/c/kernels/qk_conv_s4.c) against the NumPy reference.

One driver of seeded cases (tests/support/kernel_s4_util.py): pointwise rows shorter than, equal
to and longer than a packed group (and than AVX2's 32-weight step), odd pixel and channel
counts, k x k convolutions strided, dilated, grouped, asymmetrically padded, 3-channel
stems, the largest window, full [-8, 7] and narrow [-7, 7] weights. Built for the host
(default path, forced portable C, AVX2, and under AddressSanitizer + UBSan), aarch64
(qemu-aarch64), the DSP path (cortex-m4 in QEMU), the Helium core's DSP path (cortex-m55) and the portable fallback of
a core without DSP (cortex-m3). Also: the packing layout and its inverse.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from compiler.kernels import packing_s4
from tests.support.kernel_library_util import (
    build_native,
    build_sanitized,
    check_results,
    host_has_avx2,
    parse_driver_output,
    run_aarch64,
    run_cortex_m,
)
from tests.support.kernel_s4_util import int8_twin, s4_conv_case

SEED = 4004


def s4_cases(seed: int = SEED):
    """The seeded cases every build runs."""
    rng = np.random.default_rng(seed)
    grid = [
        ("pw_c3", dict(h=3, w=5, cin=3, cout=5, k=1, pads=(0, 0, 0, 0), pointwise=True)),
        ("pw_c8", dict(h=2, w=3, cin=8, cout=4, k=1, pads=(0, 0, 0, 0), pointwise=True)),
        ("pw_c13_odd", dict(h=3, w=3, cin=13, cout=7, k=1, pads=(0, 0, 0, 0),
                            pointwise=True, narrow=True)),
        ("pw_c32", dict(h=2, w=4, cin=32, cout=6, k=1, pads=(0, 0, 0, 0), pointwise=True)),
        ("pw_c72", dict(h=3, w=5, cin=72, cout=9, k=1, pads=(0, 0, 0, 0), pointwise=True)),
        ("pw_via_conv2d", dict(h=4, w=3, cin=16, cout=8, k=1, pads=(0, 0, 0, 0))),
        ("k3s1", dict(h=7, w=6, cin=8, cout=10)),
        ("k3s2_stem", dict(h=9, w=11, cin=3, cout=8, stride=2)),
        ("k3s1_d2", dict(h=9, w=8, cin=6, cout=5, dilation=2, pads=(2, 2, 2, 2))),
        ("k3s2_tf_same", dict(h=8, w=10, cin=12, cout=6, stride=2, pads=(0, 0, 1, 1))),
        ("k3_grouped", dict(h=6, w=7, cin=8, cout=12, groups=4)),
        ("k5s1", dict(h=7, w=7, cin=5, cout=7, k=5, pads=(2, 2, 2, 2), narrow=True)),
        ("k1s2_pad", dict(h=7, w=7, cin=16, cout=8, k=1, stride=2, pads=(1, 1, 0, 0))),
        ("k3_largest_window", dict(h=4, w=5, cin=128, cout=3)),
    ]
    return [s4_conv_case(name, rng, **spec) for name, spec in grid]


def _assert_exact(text: str, cases, isa: str | None = None) -> None:
    got_isa, results = parse_driver_output(text, cases)
    if isa is not None:
        assert got_isa == isa
    assert check_results(cases, results) == []


@pytest.mark.parametrize("flags,avx2", [
    (("-O2", "-std=c99"), False),
    (("-O2", "-std=c99", "-DQANAS_KERNELS_PORTABLE"), False),
    (("-O2", "-std=c99", "-mavx2"), True),
])
def test_host_bit_exact(tmp_path: Path, flags, avx2):
    """Host builds (default path, forced portable C, AVX2) equal the reference."""
    if avx2 and not host_has_avx2():
        pytest.skip("this CPU has no AVX2")
    cases = s4_cases()
    exe = build_native(cases, tmp_path, cflags=flags)
    _assert_exact(subprocess.run([str(exe)], capture_output=True, text=True,
                                 check=True).stdout, cases)


def test_host_sanitizers(tmp_path: Path):
    """AddressSanitizer and UBSan find no read or write outside any array, on the host's
    vector path (the nibble reads never pass a row's packed bytes)."""
    cases = s4_cases()
    exe = build_sanitized(cases, tmp_path)
    _assert_exact(subprocess.run([str(exe)], capture_output=True, text=True,
                                 check=True).stdout, cases)


@pytest.mark.toolchain
def test_aarch64_bit_exact(tmp_path: Path):
    """An aarch64 build (qemu-aarch64: the int8 library's NEON build, the int4 kernels'
    portable path) equals the reference."""
    missing = [t for t in ("aarch64-linux-gnu-gcc", "qemu-aarch64") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed")
    cases = s4_cases()
    _assert_exact(run_aarch64(cases, tmp_path), cases, "neon")


@pytest.mark.toolchain
@pytest.mark.parametrize("target,cpu,isa", [
    ("cortex-m4", None, "dsp"),                # SXTB16/SMLAD nibble pairs
    ("cortex-m55", None, "mve"),               # a Helium core runs the same DSP path
    ("cortex-m4", "cortex-m3", "portable"),    # no DSP: portable C
])
def test_cortex_m_bit_exact(tmp_path: Path, target: str, cpu: str | None, isa: str):
    """Each Cortex-M build, under qemu-system-arm, equals the reference (and the int8
    kernel on the same integer weights gives the same bytes)."""
    missing = [t for t in ("arm-none-eabi-gcc", "qemu-system-arm") if shutil.which(t) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed")
    cases = s4_cases()
    if isa != "mve":  # Helium's int8 conv reads its own interleaved layout
        cases += [int8_twin(c) for c in cases[:4]]
    out = run_cortex_m(cases, tmp_path, target, cpu)
    assert re.search(r"@ISA (\w+)", out).group(1) == isa
    _assert_exact(out, cases)


def test_pack_rows_layout_and_inverse():
    """Byte i of each 8-weight word holds w_i (low nibble) and w_(i+4) (high nibble);
    rows pad to a whole word with zeros; unpack_rows inverts pack_rows."""
    packed = packing_s4.pack_rows(np.array([[1, 2, 3, 4, -1, -2, -3, -4, 7, -8]]))
    assert packed.tolist() == [[0xF1, 0xE2, 0xD3, 0xC4, 0x07, 0x08, 0x00, 0x00]]
    assert packing_s4.row_bytes(10) == 8 and packing_s4.row_bytes(8) == 4
    rng = np.random.default_rng(1)
    rows = rng.integers(-8, 8, (6, 29))
    assert np.array_equal(packing_s4.unpack_rows(packing_s4.pack_rows(rows), 29), rows)
    w = rng.integers(-8, 8, (4, 3, 3, 3))
    assert np.array_equal(packing_s4.unpack_rows(packing_s4.pack_conv(w), 27),
                          w.transpose(0, 2, 3, 1).reshape(4, -1))


def test_pack_rows_refuses_values_outside_int4():
    with pytest.raises(ValueError, match=r"\[-8, 7\], got \[-9, 3\]"):
        packing_s4.pack_rows(np.array([[-9, 3]]))
