"""The int8 kernel library (runtime/c/kernels) against the NumPy integer reference.

Every kernel runs seeded random shapes and parameters (pointwise, k×k conv incl. grouped,
dilated, strided and the 3-channel stem, depthwise with stride/dilation/multiplier,
average/global pooling, add/sub/mul with broadcast) plus requantization edge cases
(accumulators near ±2^31, every shift, exact ties), and must be bit-exact with
`compiler.reference.kernels` + `compiler.int8` (tests/support/kernel_library_util.py) on every
ISA path: portable C, AVX2 (host), NEON (aarch64 under qemu-aarch64), the Arm DSP
extension (cortex-m4/m7 under QEMU), Helium (cortex-m55) and the portable fallback built
for a core without DSP (-mcpu=cortex-m3, run on the M4 machine).
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from compiler import int8
from compiler.kernels import isa_for_cpu, packing
from compiler.reference import kernels as ref
from tests.support.kernel_library_util import (
    KernelCase,
    avg_pool_case,
    build_firmware,
    build_native,
    build_sanitized,
    check_results,
    conv_case,
    elementwise_case,
    global_pool_case,
    host_has_avx2,
    parse_driver_output,
    pointwise_case,
    run_firmware,
)

SEED = 20260


def requant_edge_case(name: str, rng: np.random.Generator, narrow_only: bool,
                      isa: str = "portable") -> KernelCase:
    """A 1-input-channel pointwise conv whose accumulators are the bias: int32 values near
    ±2^31 and small ones, every shift (only <= -2 when ``narrow_only``: Helium's vector
    requantization), multipliers at both ends of [2^30, 2^31), and exact ties."""
    shifts = np.arange(-31, -1) if narrow_only else np.arange(-31, 1)
    out_c = len(shifts)
    mult = rng.integers(1 << 30, 1 << 31, out_c)
    mult[::3] = 1 << 30  # power-of-two scales: many exact ties
    mult[1::7] = (1 << 31) - 1
    pixels = 24
    x = rng.integers(-128, 128, (pixels, 1)).astype(np.int8)
    w = rng.choice([-1, 1], (out_c, 1, 1, 1)).astype(np.int8)
    bias = rng.integers(-(2**31) + 256, 2**31 - 256, out_c)
    bias[::2] = rng.integers(-4096, 4096, (out_c + 1) // 2)
    acc = bias[None, :].astype(np.int64) + x.astype(np.int64) * w[:, 0, 0, 0][None, :]
    zy, qmin, qmax = 3, -128, 127
    y = int8.requantize(acc, mult[None, :].astype(np.int64), shifts[None, :].astype(np.int64),
                        zy, qmin, qmax)
    packed = packing.pack_conv(w, bias.astype(np.int32), 0, isa=isa)
    rq = packing.Requant(mult.astype(np.int32), shifts.astype(np.int32), zy, qmin, qmax)
    p = "{p}"
    return KernelCase(
        name, f"qanas_pointwise_conv_s8({pixels}, 1, {out_c}, {p}input, {p}weights, {p}bias, "
              f"&{p}rq, {p}output)",
        {"input": x, "weights": packed.weights, "bias": packed.bias,
         "mult": rq.multiplier, "shift": rq.shift}, y,
        structs=[f"const qanas_requant_t {p}rq = {{{p}mult, {p}shift, {zy}, {qmin}, {qmax}}};"])


def depthwise_requant_edge_case(name: str, rng: np.random.Generator) -> KernelCase:
    """A 3x3 depthwise conv on a 3x3 map (one inside window, eight border windows) whose
    accumulators are dominated by the bias: int32 values near ±2^31 and small ones, every
    narrow shift -31 .. -2 (the DSP's and Helium's vector requantization), multipliers at
    both ends of [2^30, 2^31), powers of two and zero inputs (exact ties)."""
    shifts = np.tile(np.arange(-31, -1), 2)
    channels = len(shifts)
    mult = rng.integers(1 << 30, 1 << 31, channels)
    mult[::3] = 1 << 30
    mult[1::7] = (1 << 31) - 1
    x = rng.integers(-3, 4, (1, channels, 3, 3)).astype(np.int8)
    x[0, ::4] = 0  # accumulators equal to the bias: ties wherever the bias has them
    w = rng.choice([-1, 1], (channels, 1, 3, 3)).astype(np.int8)
    bias = rng.integers(-(2**31) + 4096, 2**31 - 4096, channels)
    bias[::2] = rng.integers(-4096, 4096, channels // 2) * 4
    # zero-input channels whose bias is an exact tie: acc * 2^30 / 2^(32 + s) = f / 2 for
    # an odd f of either sign (rounded to the even neighbour)
    for c in range(0, channels, 4):
        f = int(rng.choice([-5, -3, -1, 1, 3, 5]))
        tie = 4 * f * 2 ** int(-shifts[c] - 2)
        if abs(tie) < 2**31 - 4096:
            mult[c], bias[c] = 1 << 30, tie
    zx, zy, qmin, qmax = 0, -3, -128, 120
    acc = ref.conv2d(x.astype(np.int64) - zx, w, (1, 1), (1, 1, 1, 1), (1, 1),
                     channels) + bias.reshape(1, -1, 1, 1)
    y = int8.requantize(acc, mult.reshape(1, -1, 1, 1).astype(np.int64),
                        shifts.reshape(1, -1, 1, 1).astype(np.int64), zy, qmin, qmax)
    packed = packing.pack_depthwise(w, bias.astype(np.int32), zx)
    rq = packing.Requant(mult.astype(np.int32), shifts.astype(np.int32), zy, qmin, qmax)
    p = "{p}"
    return KernelCase(
        name, f"qanas_depthwise_conv2d_s8(&{p}cp, {p}input, {p}weights, {p}bias, &{p}rq, "
              f"{p}output)",
        {"input": x.transpose(0, 2, 3, 1), "weights": packed.weights, "bias": packed.bias,
         "mult": rq.multiplier, "shift": rq.shift}, y.transpose(0, 2, 3, 1),
        structs=[f"const qanas_conv_params_t {p}cp = {{3, 3, {channels}, 3, 3, {channels}, "
                 f"3, 3, 1, 1, 1, 1, 1, 1, {channels}, 1, {zx}}};",
                 f"const qanas_requant_t {p}rq = {{{p}mult, {p}shift, {zy}, {qmin}, {qmax}}};"])


def add_shift_case(name: str, rng: np.random.Generator, right_shifts: list[int],
                   subtract: bool) -> KernelCase:
    """Adds (or subs) over every operand difference extreme and random ones, one call per
    shared shift in ``right_shifts`` (both sides of the 32-bit path's 17 .. 46), with
    multipliers at both ends of the int32 range and exact powers of two (ties)."""
    n_per = 509  # odd: the vector paths' predicated tails
    a = rng.integers(-128, 128, n_per * len(right_shifts)).astype(np.int8)
    b = rng.integers(-128, 128, a.size).astype(np.int8)
    a[:4], b[:4] = [-128, 127, -128, 127], [-128, -128, 127, 127]
    za, zb, zy = 127, -128, 5
    p = "{p}"
    structs, calls, expected = [], [], []
    for i, n in enumerate(right_shifts):
        ma = int(rng.choice([(1 << 31) - 1, 1 << 30, int(rng.integers(1, 1 << 31))]))
        mb = int(rng.choice([(1 << 31) - 1, 1 << int(rng.integers(0, 31)),
                             int(rng.integers(1, 1 << 31))]))
        part = slice(i * n_per, (i + 1) * n_per)
        ta = (a[part].astype(np.int64) - za) * ma
        tb = (b[part].astype(np.int64) - zb) * mb
        y = int8.rounding_right_shift(ta - tb if subtract else ta + tb, n) + zy
        expected.append(np.clip(y, -128, 127).astype(np.int8))
        structs.append(f"const qanas_add_params_t {p}ap{i} = {{{za}, {zb}, {ma}, {mb}, {n}, "
                       f"{int(subtract)}, {zy}, -128, 127}};")
        calls.append(f"qanas_add_s8({n_per}, {p}a + {i * n_per}, {p}b + {i * n_per}, 0, "
                     f"&{p}ap{i}, {p}output + {i * n_per})")
    return KernelCase(name, " | ".join(f"(int){c}" for c in calls), {"a": a, "b": b},
                      np.concatenate(expected), structs=structs)


def library_cases(seed: int = SEED, isa: str = "portable") -> list[KernelCase]:
    """The seeded cases every ISA build runs, weights packed for ``isa``."""
    rng = np.random.default_rng(seed)
    pw = dict(isa=isa)
    cases = [
        requant_edge_case("requant_edges", rng, narrow_only=False, isa=isa),
        requant_edge_case("requant_edges_narrow", rng, narrow_only=True, isa=isa),
        pointwise_case("pointwise_odd", rng, pixels=7, cin=13, cout=5, **pw),
        pointwise_case("pointwise_ties", rng, pixels=9, cin=64, cout=18, ties=True, **pw),
        pointwise_case("pointwise_long", rng, pixels=4, cin=70, cout=7, wide=0, **pw),
        conv_case("conv3x3", rng, h=6, w=7, cin=5, cout=6, **pw),
        conv_case("conv3x3_wide_rows", rng, h=7, w=8, cin=16, cout=9, wide=0, **pw),
        conv_case("conv3x3_big_window", rng, h=6, w=5, cin=72, cout=3, **pw),  # > 576 B
        conv_case("conv3x3_huge_window", rng, h=3, w=4, cin=260, cout=3, **pw),  # > 2304 B
        conv_case("stem3x3s2", rng, h=9, w=8, cin=3, cout=16, stride=2, pads=(0, 0, 1, 1),
                  **pw),
        conv_case("stem3x3s2_pad", rng, h=11, w=10, cin=3, cout=8, stride=2, ties=True, **pw),
        conv_case("grouped_dilated", rng, h=9, w=8, cin=8, cout=6, dilation=2,
                  pads=(2, 2, 2, 2), groups=2, **pw),
        conv_case("conv5x5_asym", rng, h=9, w=8, cin=4, cout=3, k=5, pads=(2, 1, 2, 1),
                  **pw),
        conv_case("conv1x1_s2", rng, h=8, w=8, cin=6, cout=5, k=1, stride=2,
                  pads=(0, 0, 0, 0), **pw),
        conv_case("conv3x1", rng, h=7, w=6, cin=6, cout=4, k=1, kh=3, pads=(1, 0, 1, 0),
                  **pw),
        conv_case("depthwise", rng, h=7, w=9, cin=21, cout=0, depthwise=True, **pw),
        conv_case("depthwise_ties", rng, h=7, w=9, cin=24, cout=0, depthwise=True, ties=True,
                  **pw),
        conv_case("depthwise_s2_d2", rng, h=8, w=9, cin=6, cout=0, depthwise=True, stride=2,
                  dilation=2, pads=(2, 2, 2, 2), **pw),
        conv_case("depthwise_mult2", rng, h=6, w=5, cin=3, cout=0, depthwise=True,
                  multiplier=2, **pw),
        conv_case("depthwise5x5_wide", rng, h=8, w=8, cin=40, cout=0, depthwise=True, k=5,
                  pads=(2, 2, 2, 2), wide=0, **pw),
        avg_pool_case("avg_pool3x3_s2", rng, h=7, w=8, c=19, k=3, stride=2,
                      pads=(1, 1, 1, 1)),
        avg_pool_case("avg_pool_include_pad", rng, h=7, w=8, c=5, k=3, stride=1,
                      pads=(1, 1, 1, 1), count_include_pad=True),
        avg_pool_case("avg_pool2x2", rng, h=8, w=6, c=33, k=2, stride=2),
        global_pool_case("global_avg_pool", rng, h=5, w=6, c=20),
        elementwise_case("add", rng, op="add", count=100),
        elementwise_case("sub_broadcast", rng, op="sub", count=60, b_channels=6),
        elementwise_case("mul_broadcast", rng, op="mul", count=64, b_channels=16),
        elementwise_case("mul", rng, op="mul", count=37),
        add_shift_case("add_shifts", rng, [1, 16, 17, 24, 31, 32, 46, 47, 62], False),
        add_shift_case("sub_shifts", rng, [17, 30, 31, 33, 46, 50], True),
        *small_map_depthwise_cases(rng),
        depthwise_requant_edge_case("dw_requant_edges", rng),
    ]
    return cases


def small_map_depthwise_cases(rng: np.random.Generator) -> list[KernelCase]:
    """Depthwise convs on small feature maps, where most windows touch the padding (the
    border path: one pointer per tap, padding taps reading the zero point): every border,
    stride 1/2, dilation 1/2, kernels 3 and 5, odd channel counts (the SIMD paths' tails),
    windows wholly in the padding, more channels than one border pass (256), the channel
    multiplier, and channel counts and tap counts that reach every SIMD block and rest."""
    dw = dict(cout=0, depthwise=True)
    return [
        conv_case("dw_small_4x8", rng, h=4, w=8, cin=19, **dw),
        conv_case("dw_small_1x1_map", rng, h=1, w=1, cin=24, **dw),
        conv_case("dw_small_d2", rng, h=5, w=6, cin=13, dilation=2, pads=(2, 2, 2, 2), **dw),
        conv_case("dw_small_s2_asym", rng, h=7, w=6, cin=9, stride=2, pads=(1, 0, 1, 1),
                  **dw),
        conv_case("dw_small_s2_d2", rng, h=6, w=7, cin=16, stride=2, dilation=2,
                  pads=(2, 2, 2, 2), ties=True, **dw),
        conv_case("dw_small_5x5", rng, h=3, w=4, cin=11, k=5, pads=(2, 2, 2, 2), **dw),
        conv_case("dw_small_5x5_s2_d2", rng, h=8, w=9, cin=20, k=5, stride=2, dilation=2,
                  pads=(4, 4, 4, 4), wide=0, **dw),
        conv_case("dw_small_all_padding", rng, h=2, w=2, cin=7, pads=(3, 3, 3, 3), **dw),
        conv_case("dw_small_3x5", rng, h=4, w=5, cin=6, k=5, kh=3, pads=(1, 2, 1, 2), **dw),
        conv_case("dw_small_260ch", rng, h=2, w=3, cin=260, **dw),
        conv_case("dw_small_mult2_d2", rng, h=5, w=6, cin=3, multiplier=2, dilation=2,
                  pads=(2, 2, 2, 2), **dw),
        conv_case("dw_small_mult3_s2", rng, h=4, w=5, cin=5, multiplier=3, stride=2, **dw),
        # 16 + 8 + 5 channels (the AVX2 and NEON blocks and their scalar rest), an even
        # tap count (AVX2 pairs taps), with and without wide shifts (vector requantization)
        conv_case("dw_small_2x4_29ch", rng, h=5, w=7, cin=29, k=4, kh=2, pads=(1, 2, 0, 1),
                  **dw),
        conv_case("dw_small_29ch_narrow", rng, h=4, w=6, cin=29, wide=0, **dw),
    ]


def _assert_exact(text: str, cases: list[KernelCase], isa: str) -> None:
    got_isa, results = parse_driver_output(text, cases)
    assert got_isa == isa
    assert check_results(cases, results) == []


@pytest.mark.parametrize("flags,isa", [
    (("-O2", "-std=c99"), None),
    (("-O2", "-std=c99", "-DQANAS_KERNELS_PORTABLE"), "portable"),
])
def test_host_bit_exact(tmp_path: Path, flags, isa):
    """The host build (its default path, and forced portable C) equals the reference."""
    cases = library_cases()
    exe = build_native(cases, tmp_path, cflags=flags)
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    expected = isa or re.search(r"@ISA (\w+)", out).group(1)
    _assert_exact(out, cases, expected)


@pytest.mark.skipif(not host_has_avx2(), reason="this CPU has no AVX2")
def test_host_avx2_bit_exact(tmp_path: Path):
    """The AVX2 micro-kernel (-mavx2) equals the reference."""
    cases = library_cases()
    exe = build_native(cases, tmp_path, cflags=("-O2", "-std=c99", "-mavx2"))
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    _assert_exact(out, cases, isa_for_cpu("native", avx2=True))


def test_depthwise_small_maps_sanitizers(tmp_path: Path):
    """AddressSanitizer and UBSan find no access outside any array on the depthwise border
    path (tap pointers are formed for inside taps only), on the host's default path."""
    cases = small_map_depthwise_cases(np.random.default_rng(SEED))
    exe = build_sanitized(cases, tmp_path)
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    _assert_exact(out, cases, re.search(r"@ISA (\w+)", out).group(1))


@pytest.mark.toolchain
def test_aarch64_neon_bit_exact(tmp_path: Path):
    """The NEON path (aarch64-linux-gnu-gcc, run under qemu-aarch64) equals the reference."""
    if shutil.which("aarch64-linux-gnu-gcc") is None or shutil.which("qemu-aarch64") is None:
        pytest.skip("aarch64-linux-gnu-gcc / qemu-aarch64 not installed")
    cases = library_cases()
    exe = build_native(cases, tmp_path, cc="aarch64-linux-gnu-gcc", ldflags=("-static",))
    out = subprocess.run(["qemu-aarch64", str(exe)], capture_output=True, text=True,
                         check=True, timeout=600).stdout
    _assert_exact(out, cases, isa_for_cpu("native", aarch64=True))


@pytest.mark.toolchain
@pytest.mark.parametrize("target,cpu,cflags", [
    ("cortex-m4", None, ()),     # DSP: SXTB16 / SMLAD
    ("cortex-m4", None, ("-O0",)),  # DSP, the C loops standing in for the written-out asm
    ("cortex-m7", None, ()),     # DSP
    ("cortex-m55", None, ()),    # Helium (MVE)
    ("cortex-m4", "cortex-m3", ()),  # no DSP: the portable fallback
])
def test_cortex_m_bit_exact(tmp_path: Path, target: str, cpu: str | None,
                            cflags: tuple[str, ...]):
    """Each Cortex-M path, run under qemu-system-arm, equals the reference."""
    if shutil.which("arm-none-eabi-gcc") is None or shutil.which("qemu-system-arm") is None:
        pytest.skip("arm-none-eabi-gcc / qemu-system-arm not installed")
    cases = library_cases(isa=isa_for_cpu(cpu or target))
    elf = build_firmware(cases, tmp_path, target, extra_cflags=cflags, cpu=cpu)
    _assert_exact(run_firmware(elf, target), cases, isa_for_cpu(cpu or target))


def test_pack_conv_layout_and_folded_bias():
    """OHWI weights, and the input zero point folded into the bias."""
    rng = np.random.default_rng(1)
    w = rng.integers(-127, 128, (4, 3, 2, 5)).astype(np.int8)  # O, I, kh, kw
    bias = rng.integers(-1000, 1000, 4).astype(np.int32)
    packed = packing.pack_conv(w, bias, input_zero_point=-7)
    ohwi = packed.weights.reshape(4, 2, 5, 3)
    for o, ky, kx, i in [(0, 0, 0, 0), (3, 1, 4, 2), (2, 1, 0, 1)]:
        assert ohwi[o, ky, kx, i] == w[o, i, ky, kx]
    np.testing.assert_array_equal(packed.bias, bias + 7 * w.astype(np.int64).sum(axis=(1, 2, 3)))


def test_pack_depthwise_layout():
    """Depthwise weights are [kh][kw][C * multiplier]."""
    w = np.arange(6 * 9, dtype=np.int64).reshape(6, 1, 3, 3).astype(np.int8)
    packed = packing.pack_depthwise(w, None, input_zero_point=0)
    hwc = packed.weights.reshape(3, 3, 6)
    assert hwc[2, 1, 4] == w[4, 0, 2, 1]
    np.testing.assert_array_equal(packed.bias, np.zeros(6, np.int32))


def test_packing_rejects_bad_inputs():
    """Float weights and a bias of the wrong length are errors that say what to do."""
    with pytest.raises(TypeError, match="int8"):
        packing.pack_conv(np.zeros((2, 2, 1, 1), np.float32), None, 0)
    with pytest.raises(ValueError, match="one per output channel"):
        packing.pack_conv(np.zeros((2, 2, 1, 1), np.int8), np.zeros(3, np.int32), 0)


def test_pool_requant_matches_reference_factors():
    """Entry n of the pool table is quantize_multiplier(s_x / (s_y * n))."""
    rq = packing.pool_requant(0.05, 0.08, (3, 3), zero_point=1)
    assert len(rq.multiplier) == 10
    for n in (1, 4, 9):
        m, s = int8.quantize_multiplier(np.float64(0.05) / (np.float64(0.08) * n))
        assert (rq.multiplier[n], rq.shift[n]) == (int(m), int(s))


def test_add_params_match_reference():
    """The add's multipliers and shift are shared_shift_multipliers' (the reference's)."""
    ap = packing.add_params(0.03, 1, 0.05, -2, 0.07, 4)
    (ma, mb), n = int8.shared_shift_multipliers([0.03 / 0.07, 0.05 / 0.07])
    assert (ap.a_multiplier, ap.b_multiplier, ap.right_shift) == (ma, mb, n)


def test_isa_for_cpu():
    """The ISA table, and an unknown core listing the known ones."""
    assert isa_for_cpu("cortex-m4") == "dsp"
    assert isa_for_cpu("cortex-m55") == "mve"
    assert isa_for_cpu("cortex-m0plus") == "portable"
    assert isa_for_cpu("native", aarch64=True) == "neon"
    with pytest.raises(ValueError, match="cortex-m33"):
        isa_for_cpu("cortex-a53")


def test_reference_cases_are_nontrivial():
    """The NumPy specification is not degenerate: outputs span values, not one clamp."""
    for case in library_cases():
        assert len(np.unique(case.expected)) > 3, case.name
    win = ref.windows(np.zeros((1, 1, 5, 5)), (3, 3), (2, 2), (1, 1, 1, 1))
    assert win.shape[2:4] == (3, 3)


@pytest.mark.toolchain
def test_code_size_on_cortex_m4(tmp_path: Path):
    """The whole library is at most 20 KB of text on cortex-m4 (issue 12's budget)."""
    from compiler.kernels import KERNEL_SOURCES, KERNELS_DIR
    from targets import get_target

    if shutil.which("arm-none-eabi-gcc") is None:
        pytest.skip("arm-none-eabi-gcc not installed")
    tc = get_target("cortex-m4").toolchain
    text = 0
    for source in KERNEL_SOURCES:
        obj = tmp_path / (Path(source).stem + ".o")
        subprocess.run([tc.cc, *tc.cflags, "-Wall", "-Wextra", "-Werror",
                        f"-I{KERNELS_DIR}", f"-I{KERNELS_DIR.parent / 'include'}", "-c",
                        str(KERNELS_DIR / source), "-o", str(obj)], check=True)
        out = subprocess.run([tc.size, str(obj)], capture_output=True, text=True, check=True)
        text += int(out.stdout.splitlines()[1].split()[0])
    assert 4096 < text <= 20 * 1024
