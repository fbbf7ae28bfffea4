"""The batched int8 matmul of the kernel library (qanas_matmul_s8) against the NumPy reference.

The reference is attention's own (`compiler.reference.attention`): the int64 product of
``a − zp_a`` and ``b − zp_b`` requantized once (`compiler.int8.requantize`). Cases: the
efficient-topformer seed's Q·Kᵀ and softmax·V at 64×128 (B as ``[K][N]`` and as
``[N][K]``, ``transpose_b``), zero points on either, both or no operand, odd sizes that
leave partial blocks, more columns than one pass, B panels of many passes, reductions up
to the panel's limit, the extreme operands of the int32 bound, clamps other than int8's,
shifts on both sides of −2 and exact ties, on every instruction-set path that
`driver_output` builds (host, portable, AVX2, sanitizers, aarch64 NEON, cortex-m4 DSP,
cortex-m55 Helium, cortex-m3 portable).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest

from compiler import int8
from compiler.kernels import packing
from tests.support.kernel_library_util import (
    ISA_PATHS,
    KernelCase,
    build_native,
    check_results,
    driver_output,
    parse_driver_output,
    random_scales,
)

SEED = 20263


def matmul_case(name: str, rng: np.random.Generator, *, batch: int, m: int, k: int, n: int,
                transpose_b: bool = False, zp_a: int | None = None, zp_b: int | None = None,
                relu: bool = False, ties: bool = False, wide: float = 0.0,
                span: int | None = None, extreme: bool = False) -> KernelCase:
    """One `qanas_matmul_s8` call; random zero points where None, one real scale for the
    whole product (repeated per column, as the compiler packs it); operands uniform, or
    within ``span`` of their zero points; ``extreme``: every operand at −128 against zero points
    of 127, the largest product of its reduction."""
    zp_a = int(rng.integers(-128, 128)) if zp_a is None else zp_a
    zp_b = int(rng.integers(-128, 128)) if zp_b is None else zp_b
    if extreme:
        a = np.full((batch, m, k), -128, np.int8)
        b = np.full((batch, k, n), -128, np.int8)
    elif span is None:
        a = rng.integers(-128, 128, (batch, m, k)).astype(np.int8)
        b = rng.integers(-128, 128, (batch, k, n)).astype(np.int8)
    else:
        a = np.clip(zp_a + rng.integers(-span, span, (batch, m, k)), -128, 127).astype(np.int8)
        b = np.clip(zp_b + rng.integers(-span, span, (batch, k, n)), -128, 127).astype(np.int8)
    zy = int(rng.integers(-20, 20))
    qmin, qmax = (max(-128, zy), 127) if relu else (-128, 127)
    acc = np.matmul(a.astype(np.int64) - zp_a, b.astype(np.int64) - zp_b)
    spread = max(float(np.abs(acc).max()), 1.0) / 100.0
    real = (float(random_scales(rng, 1, ties, wide, k)[0]) if ties or wide
            else float(rng.uniform(0.5, 2.0)) / spread)
    rq = packing.requant(real, n, zy, qmin, qmax)
    y = int8.requantize(acc, rq.multiplier.astype(np.int64), rq.shift.astype(np.int64), zy,
                        qmin, qmax)
    p = "{p}"
    params = (f"const qanas_matmul_params_t {p}mp = {{{batch}, {m}, {k}, {n}, "
              f"{int(transpose_b)}, {zp_a}, {zp_b}}};")
    rq_struct = (f"const qanas_requant_t {p}rq = {{{p}mult, {p}shift, {zy}, {qmin}, "
                 f"{qmax}}};")
    return KernelCase(name, f"qanas_matmul_s8(&{p}mp, {p}a, {p}b, &{p}rq, {p}output)",
                      {"a": a, "b": b.transpose(0, 2, 1) if transpose_b else b,
                       "mult": rq.multiplier, "shift": rq.shift},
                      y, macs=batch * m * k * n, structs=[params, rq_struct])


def matmul_cases(seed: int = SEED) -> list[KernelCase]:
    """The seeded cases every ISA build runs."""
    rng = np.random.default_rng(seed)
    grid = [
        ("seed_qk", dict(batch=4, m=2, k=16, n=2, zp_a=0, zp_b=0)),
        ("seed_av_transposed", dict(batch=4, m=2, k=2, n=32, transpose_b=True, zp_a=-128,
                                    zp_b=0)),
        ("seed_av", dict(batch=4, m=2, k=2, n=32, zp_a=-128, zp_b=0)),
        ("both_zero_points", dict(batch=3, m=5, k=19, n=7)),
        ("both_zero_points_transposed", dict(batch=3, m=5, k=19, n=7, transpose_b=True)),
        ("b_zero_point_only", dict(batch=2, m=9, k=33, n=6, zp_a=0, zp_b=-77)),
        ("one_by_one", dict(batch=1, m=1, k=1, n=1)),
        ("many_columns", dict(batch=2, m=3, k=24, n=150)),
        ("many_columns_transposed", dict(batch=2, m=3, k=24, n=150, transpose_b=True)),
        ("panel_passes", dict(batch=2, m=4, k=100, n=23)),
        ("panel_limit", dict(batch=1, m=3, k=1024, n=3)),
        ("long_reduction_transposed", dict(batch=1, m=2, k=3000, n=5, transpose_b=True)),
        ("extreme", dict(batch=1, m=3, k=1024, n=5, zp_a=127, zp_b=127, extreme=True)),
        ("extreme_transposed", dict(batch=1, m=2, k=2000, n=3, transpose_b=True, zp_a=127,
                                    zp_b=127, extreme=True)),
        ("relu", dict(batch=2, m=6, k=12, n=10, relu=True)),
        ("wide_scales", dict(batch=2, m=3, k=2, n=9, wide=1.0, span=6)),
        ("ties", dict(batch=2, m=4, k=10, n=12, ties=True, transpose_b=True)),
    ]
    return [matmul_case(name, rng, **spec) for name, spec in grid]


def test_cases_are_nontrivial():
    """The reference outputs span many values (not one clamp), and the scales cover both
    requantization paths (shift ≤ −2 and above)."""
    cases = matmul_cases()
    for case in cases:
        if case.expected.size > 8 and "extreme" not in case.name:
            assert len(np.unique(case.expected)) > 3, case.name
    shifts = np.concatenate([c.arrays["shift"] for c in cases])
    assert shifts.min() <= -2 < shifts.max()


@pytest.mark.parametrize("path", ISA_PATHS)
def test_bit_exact_on_every_path(tmp_path: Path, path: str):
    """Every instruction-set path's build gives the reference's bytes."""
    cases = matmul_cases()
    out, isa = driver_output(path, cases, tmp_path)
    got_isa, results = parse_driver_output(out, cases)
    assert got_isa == isa
    assert check_results(cases, results) == []


def test_shapes_past_the_limits_are_refused(tmp_path: Path):
    """A reduction past the panel (B as [K][N]) or past QANAS_MATMUL_MAX_K, and an empty
    shape, return QANAS_ERROR_BAD_ARGUMENT; the same reduction transposed runs."""
    rng = np.random.default_rng(2)
    cases = [matmul_case("panel_plus_one", rng, batch=1, m=1, k=1025, n=2),
             matmul_case("panel_plus_one_transposed", rng, batch=1, m=1, k=1025, n=2,
                         transpose_b=True),
             matmul_case("past_max_k", rng, batch=1, m=1, k=32768, n=1, transpose_b=True),
             matmul_case("empty", rng, batch=1, m=1, k=4, n=1)]
    cases[-1].structs[0] = cases[-1].structs[0].replace("{1, 1, 4, 1,", "{0, 1, 4, 1,")
    exe = build_native(cases, tmp_path)
    out = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout
    _, results = parse_driver_output(out, cases)
    assert [r.status != 0 for r in results] == [True, False, True, True]
    assert check_results(cases[1:2], results[1:2]) == []
