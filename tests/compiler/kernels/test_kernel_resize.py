"""The int8 resize of the kernel library (qanas_resize_s8) against the NumPy reference.

Each case feeds the C kernel the compiler's tables (`compiler.passes.resize_spec`) and
compares with the reference's own derivation (`compiler.reference.kernels`: exact source
coordinates, separable int64 lerps, `compiler.int8.requantize`): bilinear in every
coordinate mode (2×, 4×, 8× and odd-ratio upsamples, a downsample), nearest in every
rounding mode with and without a rescale, NHWC and NCHW output, clamps other than int8's,
requantization shifts on both sides of −2, power-of-two scales (exact ties), channel
counts that split into blocks and outputs wider than one column band. One driver per ISA path: host (default,
forced portable C, AVX2), sanitizers, NEON (qemu-aarch64), DSP (cortex-m4), Helium
(cortex-m55) and a core without DSP (cortex-m3).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from compiler import int8
from tests.support.kernel_library_util import (
    ISA_PATHS,
    KernelCase,
    build_native,
    check_results,
    driver_output,
    parse_driver_output,
)
from tests.support.kernel_resize_util import resize_case

SEED = 20262


def resize_cases(seed: int = SEED) -> list[KernelCase]:
    """The seeded cases every ISA build runs."""
    rng = np.random.default_rng(seed)
    grid = [
        ("bilinear_x8_head", dict(h=8, w=16, c=6, out_hw=(64, 128))),
        ("bilinear_x8_head_nchw", dict(h=8, w=16, c=6, out_hw=(64, 128), nchw=True)),
        ("bilinear_x2", dict(h=5, w=7, c=24, out_hw=(10, 14))),
        ("bilinear_x2_nchw_relu", dict(h=5, w=7, c=19, out_hw=(10, 14), nchw=True,
                                       relu=True)),
        ("bilinear_x4_align", dict(h=4, w=6, c=5, out_hw=(16, 24), mode="align_corners")),
        ("bilinear_odd_asym", dict(h=5, w=6, c=3, out_hw=(13, 11), mode="asymmetric")),
        ("bilinear_pytorch", dict(h=3, w=4, c=7, out_hw=(9, 10), mode="pytorch_half_pixel")),
        ("bilinear_symmetric", dict(h=6, w=5, c=4, out_hw=(9, 8),
                                    mode="half_pixel_symmetric")),
        ("bilinear_down", dict(h=9, w=12, c=8, out_hw=(4, 5))),
        ("bilinear_many_channels", dict(h=3, w=5, c=200, out_hw=(6, 10))),
        ("bilinear_channel_blocks", dict(h=3, w=4, c=260, out_hw=(6, 8))),
        ("bilinear_wide_input", dict(h=2, w=300, c=3, out_hw=(3, 450))),
        ("bilinear_gain_high", dict(h=4, w=4, c=4, out_hw=(8, 8), gain=60.0)),
        ("bilinear_ties", dict(h=4, w=5, c=6, out_hw=(8, 10), gain=0.5)),
        ("bilinear_ties_nchw", dict(h=4, w=5, c=3, out_hw=(8, 20), gain=0.25, nchw=True)),
        # the tie-free form with a multiplier of s or more trailing zeros: |acc| <= 128 * 16
        # (2^11), so no tie while v2(m) + 11 < 31 + s (s = 3: v2(m) <= 22); a trained
        # decoder's 2x resize had v2(m) = 6
        ("bilinear_no_ties_v2_6", dict(h=4, w=8, c=16, out_hw=(8, 16), zx=0,
                                       requant=(1419802304, -4))),
        ("bilinear_no_ties_v2_22", dict(h=4, w=5, c=6, out_hw=(8, 10), zx=0,
                                        requant=(383 << 22, -4))),
        ("bilinear_no_ties_v2_22_nchw", dict(h=4, w=5, c=3, out_hw=(8, 20), zx=0, nchw=True,
                                             requant=(351 << 22, -4))),
        ("bilinear_ties_v2_23", dict(h=2, w=2, c=4, out_hw=(4, 4), zx=0,
                                     requant=(191 << 23, -4))),
        # nearest: |acc| <= 128, no tie while v2(m) + 7 < 31 + s (s = 2: v2(m) <= 25)
        ("nearest_no_ties_v2_25", dict(h=5, w=5, c=5, out_hw=(11, 7), method="nearest",
                                       zx=0, requant=(33 << 25, -3))),
        ("nearest_copy", dict(h=4, w=6, c=8, out_hw=(8, 12), method="nearest",
                              rescale=False)),
        ("nearest_copy_nchw", dict(h=4, w=6, c=8, out_hw=(8, 12), method="nearest",
                                   rescale=False, nchw=True)),
        ("nearest_rescale", dict(h=5, w=5, c=5, out_hw=(11, 7), method="nearest",
                                 nearest_mode="round_prefer_ceil", gain=0.2)),
        ("nearest_rescale_wide", dict(h=5, w=5, c=5, out_hw=(11, 7), method="nearest",
                                      nearest_mode="floor", mode="asymmetric", gain=0.9)),
        ("nearest_rescale_nchw", dict(h=3, w=4, c=150, out_hw=(6, 8), method="nearest",
                                      nearest_mode="ceil", nchw=True, relu=True, gain=0.2)),
        ("nearest_tf", dict(h=4, w=4, c=2, out_hw=(7, 9), method="nearest",
                            mode="tf_half_pixel_for_nn", gain=0.15)),
    ]
    return [resize_case(name, rng, **spec) for name, spec in grid]


def _assert_exact(text: str, cases: list[KernelCase], isa: str) -> None:
    got_isa, results = parse_driver_output(text, cases)
    assert got_isa == isa
    assert check_results(cases, results) == []


def test_cases_are_nontrivial():
    """The reference outputs span many values (not one clamp) in every case."""
    for case in resize_cases():
        assert len(np.unique(case.expected)) > 3, case.name


@pytest.mark.parametrize("path", ISA_PATHS)
def test_bit_exact_on_every_path(tmp_path: Path, path: str):
    """Every instruction-set path's build gives the reference's bytes."""
    cases = resize_cases()
    out, isa = driver_output(path, cases, tmp_path)
    _assert_exact(out, cases, isa)


def test_bad_arguments_are_refused(tmp_path: Path):
    """A method the library does not know returns QANAS_ERROR_BAD_ARGUMENT."""
    rng = np.random.default_rng(1)
    good = resize_case("good", rng, h=2, w=3, c=2, out_hw=(4, 6))
    bad_method = resize_case("bad_method", rng, h=2, w=3, c=2, out_hw=(4, 6))
    bad_method.structs = [bad_method.structs[0].replace("{2, 3, 2, 4, 6, 1,",
                                                        "{2, 3, 2, 4, 6, 7,")]
    cases = [good, bad_method]
    exe = build_native(cases, tmp_path)
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    _, results = parse_driver_output(out, cases)
    assert [r.status != 0 for r in results] == [False, True]


def test_tie_free_rounding_is_the_reference_rounding():
    """The resize's requantization without ties (qk_resize.c): with s = −shift − 1 ≥ 1 and
    v2(m) < s, (hi(acc·m) + 2^(s−1)) >> s equals the reference's half-to-even rounding
    of acc·m / 2^(32 + s) for every int32 accumulator, including the extremes and the
    multiples of large powers of two where a tie would sit."""
    rng = np.random.default_rng(7)
    acc = np.concatenate([rng.integers(-2**31, 2**31, 20000),
                          [-2**31, 2**31 - 1, 0, 1, -1],
                          (rng.integers(-2**8, 2**8, 2000) << rng.integers(0, 23, 2000))])
    acc = acc.astype(np.int64)
    for s in (1, 2, 5, 12, 30):
        for zeros in sorted({0, s // 2, s - 1}):
            m = (int(rng.integers(2**(30 - zeros), 2**(31 - zeros))) | 1) << zeros
            m = min(m, 2**31 - 2**zeros)
            want = int8.rounding_right_shift(acc * m, 32 + s)
            got = (((acc * m) >> 32) + (1 << (s - 1))) >> s
            assert np.array_equal(got, want), (s, zeros)
    m, s = 3 << 2, 2  # v2(m) = s: acc = -2^31 sits on a tie, the exact formula is needed
    tie = np.int64(-2**31) * m
    assert ((tie >> 32) + (1 << (s - 1))) >> s != int8.rounding_right_shift(tie, 32 + s)


def test_bounded_accumulators_have_no_ties():
    """With |acc| <= B the tie-free form stays exact while v2(m) + floor(log2 B) < 31 + s
    (qk_resize.c's condition), for multipliers with s or more trailing zeros too: every
    accumulator in [-B, B] at the largest v2(m) allowed, and a tie at the next one."""
    for s, bits in ((3, 11), (2, 7), (6, 15)):
        bound = 1 << bits
        acc = np.arange(-bound, bound + 1, dtype=np.int64)
        zeros = 30 + s - bits
        m = ((1 << (30 - zeros)) | 1) << zeros
        got = (((acc * m) >> 32) + (1 << (s - 1))) >> s
        assert np.array_equal(got, int8.rounding_right_shift(acc * m, 32 + s)), (s, bits)
        m = 1 << 30 if zeros + 1 >= 30 else ((1 << (29 - zeros)) | 1) << (zeros + 1)
        got = (((acc * m) >> 32) + (1 << (s - 1))) >> s
        assert not np.array_equal(got, int8.rounding_right_shift(acc * m, 32 + s)), (s, bits)
