"""The register-blocked pointwise / k×k conv micro-kernels at every tail of their blocks.

The DSP path runs 4-pixel blocks (inputs up to 128 channels, 32 output channels per
requantization pass) and pixel pairs × channel pairs (64 per pass) for the rest; AVX2
and NEON run 2 pixels × 4 channels with a vector requantization; Helium 8 rows per
pass. These cases put odd pixel counts, channel counts that are not a multiple of the
blocks (1, 3, 5, 7, 65, 70, 130), input lengths with every remainder of the 16-, 8- and
4-byte steps (1, 3, 8, 16, 24, 25, 40, 136; windows of 27, 45 and 75 bytes end in the DSP
tail word), the 3-channel stem (inside and border windows, stride 1 and 2), strided 1×1
convs, the 16/24-channel maps of the squeezenas-small seed, and a mix of narrow and wide
(>= 0.25) scales and of clamps through each path, and require the NumPy reference's bytes
(tests/support/kernel_library_util.py).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from compiler.kernels import isa_for_cpu
from tests.support.kernel_library_util import (
    KernelCase,
    build_firmware,
    build_native,
    check_results,
    conv_case,
    host_has_avx2,
    parse_driver_output,
    pointwise_case,
    run_firmware,
)

SEED = 12

#: (pixels, in_c, out_c) of the pointwise cases.
POINTWISE_SHAPES = [
    (1, 1, 1), (3, 3, 7), (5, 8, 5), (6, 16, 96), (7, 24, 16), (4, 25, 6), (9, 40, 65),
    (2, 96, 16), (3, 17, 130), (8, 16, 3),
]


def blocking_cases(isa: str) -> list[KernelCase]:
    """Pointwise and k×k conv cases at the blocks' tails, weights packed for ``isa``."""
    rng = np.random.default_rng(SEED)
    cases = [pointwise_case(f"pw_{p}x{i}to{o}", rng, pixels=p, cin=i, cout=o, isa=isa)
             for p, i, o in POINTWISE_SHAPES]
    cases.append(pointwise_case("pw_ties", rng, pixels=5, cin=24, cout=9, ties=True, isa=isa))
    cases.append(pointwise_case("pw_narrow", rng, pixels=7, cin=16, cout=12, wide=0, isa=isa))
    cases.append(pointwise_case("pw_narrow_passes", rng, pixels=8, cin=36, cout=70, wide=0,
                                isa=isa))
    cases.append(pointwise_case("pw_long_input", rng, pixels=5, cin=136, cout=6, wide=0,
                                isa=isa))
    cases += [
        conv_case("conv3x3_out5", rng, h=5, w=7, cin=8, cout=5, isa=isa),
        conv_case("conv3x3_out7_cin16", rng, h=4, w=5, cin=16, cout=7, wide=0, isa=isa),
        conv_case("stem3x3s2_out16", rng, h=9, w=11, cin=3, cout=16, stride=2,
                  pads=(0, 0, 1, 1), isa=isa),
        conv_case("conv1x1_grouped", rng, h=3, w=5, cin=8, cout=12, k=1, pads=(0, 0, 0, 0),
                  groups=4, isa=isa),
        conv_case("stem3x3s2_same_wide", rng, h=7, w=21, cin=3, cout=40, stride=2, isa=isa),
        conv_case("stem3x3s1", rng, h=5, w=13, cin=3, cout=6, isa=isa),
        conv_case("conv5x5_cin3_tail", rng, h=7, w=9, cin=3, cout=5, k=5, pads=(2, 2, 2, 2),
                  isa=isa),
        conv_case("conv3x3_cin5_tail", rng, h=5, w=9, cin=5, cout=7, isa=isa),
        conv_case("conv1x1_s2", rng, h=6, w=17, cin=16, cout=9, k=1, stride=2,
                  pads=(0, 0, 0, 0), isa=isa),
        conv_case("conv1x1_s2_cin5", rng, h=5, w=19, cin=5, cout=4, k=1, stride=2,
                  pads=(0, 0, 0, 0), isa=isa),
    ]
    return cases


def _assert_exact(text: str, cases: list[KernelCase], isa: str) -> None:
    got_isa, results = parse_driver_output(text, cases)
    assert got_isa == isa
    assert check_results(cases, results) == []


@pytest.mark.parametrize("flags,isa", [
    (("-O2", "-std=c99", "-DQANAS_KERNELS_PORTABLE"), "portable"),
    (("-O2", "-std=c99", "-mavx2"), "avx2"),
])
def test_host_blocking_bit_exact(tmp_path: Path, flags, isa):
    """Portable C and the AVX2 2 x 4 block equal the reference at every tail."""
    if isa == "avx2" and not host_has_avx2():
        pytest.skip("this CPU has no AVX2")
    cases = blocking_cases("portable")
    exe = build_native(cases, tmp_path, cflags=flags)
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    _assert_exact(out, cases, isa)


@pytest.mark.toolchain
def test_aarch64_blocking_bit_exact(tmp_path: Path):
    """The NEON 2 x 4 block and its 64-bit-lane requantization equal the reference at
    every tail (qemu-aarch64)."""
    if shutil.which("aarch64-linux-gnu-gcc") is None or shutil.which("qemu-aarch64") is None:
        pytest.skip("aarch64-linux-gnu-gcc / qemu-aarch64 not installed")
    cases = blocking_cases("neon")
    exe = build_native(cases, tmp_path, cc="aarch64-linux-gnu-gcc", ldflags=("-static",))
    out = subprocess.run(["qemu-aarch64", str(exe)], capture_output=True, text=True,
                         check=True, timeout=600).stdout
    _assert_exact(out, cases, isa_for_cpu("native", aarch64=True))


@pytest.mark.toolchain
@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m55"])
def test_cortex_m_blocking_bit_exact(tmp_path: Path, target: str):
    """The DSP 4-pixel and pixel-pair kernels with their written-out requantization (M4;
    the int8-only clamp's SSAT form too) and the Helium GEMM (M55) equal the reference at
    every tail, under qemu-system-arm."""
    if shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None:
        pytest.skip("arm-none-eabi-gcc / qemu-system-arm not installed")
    isa = isa_for_cpu(target)
    cases = blocking_cases(isa)
    elf = build_firmware(cases, tmp_path, target)
    _assert_exact(run_firmware(elf, target), cases, isa)
