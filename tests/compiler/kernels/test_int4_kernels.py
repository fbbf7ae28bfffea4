"""The int4-weight convolutions (runtime/c/kernels/qk_conv_s4.c) against the NumPy reference.

One driver of seeded cases (tests/support/kernel_s4_util.py): pointwise rows shorter than, equal
to and longer than a packed group (and than AVX2's 32-weight step), odd pixel and channel
counts, k x k convolutions strided, dilated, grouped, asymmetrically padded, 3-channel
stems, the largest window, full [-8, 7] and narrow [-7, 7] weights. Built for every path
(`test_bit_exact_on_every_path`): the host (default path, forced portable C, AVX2, and
under AddressSanitizer + UBSan), aarch64 (qemu-aarch64), the DSP path (cortex-m4 in
QEMU), the Helium path (cortex-m55), the Helium core's DSP path (cortex-m55 built with
QANAS_KERNELS_NO_MVE, which also serves rows longer than QANAS_S4_PATCH_MAX there), its -O0
build (the C loops standing in for the asm) and the portable fallback of a core without
DSP (cortex-m3). Also: the packing layout and its
inverse.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from compiler.kernels import packing_s4
from tests.support.kernel_library_util import (
    check_results,
    driver_output,
    parse_driver_output,
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
        ("pw_cout70", dict(h=1, w=3, cin=40, cout=70, k=1, pads=(0, 0, 0, 0),
                           pointwise=True)),
        ("pw_c5_cout13", dict(h=1, w=3, cin=5, cout=13, k=1, pads=(0, 0, 0, 0),
                              pointwise=True)),
        ("pw_c20_cout9", dict(h=1, w=2, cin=20, cout=9, k=1, pads=(0, 0, 0, 0),
                              pointwise=True)),
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


#: Cortex-M paths: (QEMU target, -mcpu override, extra flags, the ISA the build reports).
CORTEX_M_PATHS = {
    "cortex-m4": ("cortex-m4", None, (), "dsp"),          # SXTB16/SMLAD nibble pairs
    "cortex-m55": ("cortex-m55", None, (), "mve"),        # Helium: VSHL/VAND + VMLADAV
    "cortex-m55-dsp": ("cortex-m55", None, ("-DQANAS_KERNELS_NO_MVE",), "dsp"),
    # -O0: int4 runs the C loops standing in for the asm that needs every core register
    # (the library, whose ISA the build reports, stays on Helium)
    "cortex-m55-O0": ("cortex-m55", None, ("-O0",), "mve"),
    "cortex-m3": ("cortex-m4", "cortex-m3", (), "portable"),  # no DSP: portable C
}


def _driver_output(path: str, cases, work: Path) -> tuple[str, str | None]:
    """(stdout, expected ISA or None: not checked) of the driver built for ``path`` and run
    (`driver_output`'s paths, plus the M55's DSP fallback)."""
    if path in CORTEX_M_PATHS:
        target, _, flags, isa = CORTEX_M_PATHS[path]
        out, _ = driver_output(target if path != "cortex-m3" else path, cases, work,
                               cortex_m_cflags=flags)
        return out, isa
    out, isa = driver_output(path, cases, work)
    return out, isa if path in ("portable", "avx2", "aarch64") else None


@pytest.mark.parametrize("path", [
    "host", "portable", "avx2",
    "sanitizers",  # AddressSanitizer + UBSan: the nibble reads never pass a row's bytes
    pytest.param("aarch64", marks=pytest.mark.toolchain),
    *[pytest.param(p, marks=pytest.mark.toolchain) for p in CORTEX_M_PATHS],
])
def test_bit_exact_on_every_path(tmp_path: Path, path: str):
    """Every instruction-set path's build equals the reference; on Cortex-M the int8
    kernel on the same integer weights (in the layout its build reads) gives the same
    bytes too."""
    cases = s4_cases()
    if path in CORTEX_M_PATHS:
        isa = CORTEX_M_PATHS[path][3]
        cases += [int8_twin(c, isa) for c in cases[:4]]
    out, isa = _driver_output(path, cases, tmp_path)
    _assert_exact(out, cases, isa)


def test_cases_reach_every_helium_branch():
    """The seeded cases reach each branch of the Helium kernel (qk_conv_s4.c): rows of
    whole 32-weight steps only, of a partial step only, of both, with a partial step of
    each size (4, 8, 12 bytes); one-step rows of each size run by qk_s4_mve_short_rows
    (which leaves the last ceil(16 / row bytes) - 1 rows, at least one, to the predicated
    blocks); channel counts leaving 1-3 rows of a 4-row block and one over a pass of 64
    channels; a last pixel paired with itself."""
    rows, couts, pixels = [], [], set()
    for case in s4_cases():
        rows.append(packing_s4.row_bytes(case.macs // case.expected.size))
        couts.append(case.arrays["bias"].size)
        pixels.add(case.expected.size // case.arrays["bias"].size)
    assert {r % 16 for r in rows} == {0, 4, 8, 12}
    assert any(r < 16 for r in rows) and any(r % 16 == 0 for r in rows)
    assert any(r > 16 and r % 16 for r in rows)
    short = {r for r, c in zip(rows, couts, strict=True)
             if r <= 16 and c - max(1, -(-16 // r) - 1) >= 4}
    assert short == {4, 8, 12, 16}
    assert {c % 4 for c in couts} == {0, 1, 2, 3} and max(couts) > 64
    assert any(p % 2 for p in pixels)


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
