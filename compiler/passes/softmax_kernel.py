"""The int8 softmax kernel as statement-level TIR: TFLite Micro's fixed-point softmax.

Per row of ``depth`` int8 values (the last axis), as TFLite's reference int8 softmax
computes it with gemmlowp's fixed point (see docs/int8-arithmetic.md, "Softmax"):

1. ``d = x - max(x)``; an entry with ``d < diff_min`` contributes nothing and outputs
   the zero point; the others are scaled to Q5.26 by ``srdhm(d · 2^left_shift,
   multiplier)`` (``beta · s_x`` as a multiplier greater than one);
2. ``e = exp(d)`` in Q0.31 (a polynomial on [-1/4, 0), then a barrel shifter over the
   integer bits), summed in Q12.19 (each ``e`` divided by 2^12, rounded);
3. the reciprocal of the sum (normalised, three Newton steps) times each ``e`` is the
   Q0.31 probability times ``2^-bits``, ``bits`` per row;
4. one rounding to the output grid: ``requantize(p, M, n0 + bits)`` with ``(M, n0)`` from
   `compiler.int8.quantize_multiplier` of ``2^-31 / s_y`` (its low bits dropped past a
   right shift of 62, as `quantize_multiplier` does for the row's real factor).

Every intermediate lives in a one-element stack buffer written by its own statement (no
nested ``Let`` chains, which TVM's buffer compaction expands exponentially), and each
``exp`` is computed twice per element (for the sum, then for the output) instead of
kept in scratch. The C library's ``qanas_softmax_s8`` computes the same integers and
replaces this kernel in compiled projects (`compiler.passes.offload_kernels`); this one
runs on TVM's VM and when the library is off.
"""

from __future__ import annotations

import functools
import math
from dataclasses import asdict, dataclass

import numpy as np
import tvm

from compiler import int8

SCALED_DIFF_INTEGER_BITS = 5
"""Integer bits of the scaled difference (Q5.26), as TFLite's int8 softmax."""

ACCUMULATION_INTEGER_BITS = 12
"""Integer bits of the sum of exponentials (Q12.19)."""

_EXP_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
               (2, 39332535), (3, 720401), (4, 242))
"""gemmlowp's ``exp(-2^k)`` in Q0.31 for each integer bit ``k`` of the difference."""


@dataclass(frozen=True)
class SoftmaxParams:
    """The integers of one int8 softmax (the kernel tag and the library's step parameters).

    Attributes:
        rows, depth: the rows and the length of the softmax axis (the last one).
        input_multiplier, input_left_shift: ``s_x · 2^26`` as a Q0.31 multiplier >= 2^30
            and a left shift (TFLite's ``QuantizeMultiplierGreaterThanOne``).
        diff_min: the smallest ``x - max`` that contributes (``-floor(31 · 2^26 /
            2^left_shift)``, TFLite's ``CalculateInputRadius``).
        output_multiplier, output_right_shift: `quantize_multiplier` of ``2^-31 / s_y``
            as (M, 31 - shift); a row's right shift is this plus its ``bits``.
        output_zero_point, qmin, qmax: the output grid.
    """

    rows: int
    depth: int
    input_multiplier: int
    input_left_shift: int
    diff_min: int
    output_multiplier: int
    output_right_shift: int
    output_zero_point: int
    qmin: int
    qmax: int

    @classmethod
    def from_scales(cls, shape: tuple[int, ...], input_scale: float, output_scale: float,
                    output_zero_point: int, qmin: int, qmax: int) -> SoftmaxParams | None:
        """The parameters of a softmax over the last axis of `shape`; None when the input
        scale is below 2^-27 or the output scale about 1 or more (no right shift is left
        for the probabilities)."""
        scaling = _input_scaling(input_scale)
        out_mult, out_shift = int8.quantize_multiplier(
            np.ldexp(1.0, -31) / np.float64(np.float32(output_scale)))
        right_shift = 31 - int(out_shift)
        if scaling is None or right_shift >= int8.MAX_RIGHT_SHIFT or int(out_mult) == 0:
            return None
        rows = int(np.prod(shape[:-1], dtype=np.int64))
        return cls(rows, int(shape[-1]), *scaling, int(out_mult), right_shift,
                   int(output_zero_point), int(qmin), int(qmax))

    def to_dict(self) -> dict:
        """The parameters by name (JSON)."""
        return asdict(self)


def _input_scaling(input_scale: float) -> tuple[int, int, int] | None:
    """(multiplier, left shift, diff_min) of ``s_x · 2^26``: TFLite's
    ``QuantizeMultiplierGreaterThanOne`` (rounded half up) and ``CalculateInputRadius``."""
    fractional_bits = 31 - SCALED_DIFF_INTEGER_BITS
    real = min(float(np.float32(input_scale)) * 2.0**fractional_bits, 2.0**31 - 1.0)
    mantissa, left_shift = math.frexp(real)
    multiplier = int(math.floor(mantissa * 2**31 + 0.5))
    if multiplier == 2**31:
        multiplier, left_shift = multiplier // 2, left_shift + 1
    if left_shift < 0:
        return None
    radius = ((1 << SCALED_DIFF_INTEGER_BITS) - 1) * 2.0**fractional_bits / 2.0**left_shift
    return multiplier, left_shift, -int(math.floor(radius))


def softmax_primfunc(shape: tuple[int, ...], p: SoftmaxParams):
    """The TIR PrimFunc ``(x int8[shape], y int8[shape])`` of the softmax `p` describes.

    The kernel's TVMScript is parsed once per shape (`_softmax_template`), with the per-op
    integers as scalar parameters that `PrimFunc.specialize` binds here: parsing is the
    costly part of planning an attention subnet (docs/memory-planning.md), and the bound
    function is the one parsing with the integers inlined gives, statement for statement.
    """
    template = _softmax_template(tuple(int(d) for d in shape))
    values = {"diff_min": p.diff_min, "input_factor": 1 << p.input_left_shift,
              "input_multiplier": p.input_multiplier,
              "output_right_shift": p.output_right_shift,
              "output_multiplier": p.output_multiplier,
              "output_zero_point": p.output_zero_point, "qmin": p.qmin, "qmax": p.qmax}
    scalars = {param.name: param for param in template.params[2:]}
    return template.specialize({scalars[name]: tvm.tirx.IntImm("int32", value)
                                for name, value in values.items()})


@functools.lru_cache(maxsize=32)
def _softmax_template(shape: tuple[int, ...]):
    """The softmax PrimFunc over `shape` with its per-op integers as int32 parameters
    (after ``x`` and ``y``): ``diff_min``, ``input_factor`` (``2^input_left_shift``),
    ``input_multiplier``, ``output_right_shift``, ``output_multiplier``,
    ``output_zero_point``, ``qmin``, ``qmax``."""
    from tvm.script import tirx as T

    rows = int(np.prod(shape[:-1], dtype=np.int64))
    depth = shape[-1]
    flat = rows * depth
    int32_max, one_30 = 2**31 - 1, 1 << 30
    # slots of the int32 scratch `r`
    (MAX, SUM, A, MOD, X, X2, X3, X4, POLY, RES, REM, E, HALF, REC, BITS, MUL, RSH,
     RAW, TMP, Q) = range(20)

    @T.macro
    def srdhm(r, w, dst, a, b):
        """gemmlowp SaturatingRoundingDoublingHighMul: r[dst] = round(a · b / 2^31)."""
        w[0] = T.Cast("int64", a) * T.Cast("int64", b)
        r[dst] = T.if_then_else(
            a == b and a == T.int32(-(2**31)), T.int32(int32_max),
            T.Cast("int32", T.truncdiv(w[0] + T.if_then_else(w[0] >= T.int64(0),
                                                             T.int64(one_30),
                                                             T.int64(1 - one_30)),
                                       T.int64(1 << 31))))

    @T.macro
    def rdpot(r, dst, src, exponent):
        """gemmlowp RoundingDivideByPOT: r[dst] = r[src] / 2^exponent, half away from 0."""
        r[dst] = T.shift_right(r[src], T.int32(exponent)) + T.Cast("int32", (
            T.bitwise_and(r[src], T.int32((1 << exponent) - 1))
            > T.int32(((1 << exponent) - 1) >> 1) + T.Cast("int32", r[src] < T.int32(0))))

    @T.macro
    def saturating_shl(r, dst, src, exponent):
        """r[dst] = r[src] · 2^exponent saturated to int32."""
        r[dst] = T.if_then_else(
            r[src] > T.int32((1 << (31 - exponent)) - 1), T.int32(int32_max),
            T.if_then_else(r[src] < T.int32(1 - (1 << (31 - exponent))), T.int32(-(2**31)),
                           r[src] * T.int32(1 << exponent)))

    @T.macro
    def barrel(r, w, i):
        """r[RES] times exp(-2^k) when bit k of the remainder r[REM] is set (k, i-th row)."""
        if T.bitwise_and(T.shift_right(r[REM], T.int32(26 + _EXP_BARREL[i][0])),
                         T.int32(1)) != 0:
            srdhm(r, w, RES, r[RES], T.int32(_EXP_BARREL[i][1]))

    @T.macro
    def exp_of(r, w, d, diff_min, input_factor, input_multiplier):
        """r[E] = exp of the difference ``d`` (Q0.31), 0 below diff_min."""
        if d >= diff_min:
            srdhm(r, w, A, d * input_factor, input_multiplier)
            r[MOD] = T.bitwise_and(r[A], T.int32((1 << 24) - 1)) - T.int32(1 << 24)
            r[X] = r[MOD] * T.int32(32) + T.int32(1 << 28)  # exp on [-1/4, 0) around -1/8
            srdhm(r, w, X2, r[X], r[X])
            srdhm(r, w, X3, r[X2], r[X])
            srdhm(r, w, X4, r[X2], r[X2])
            rdpot(r, X4, X4, 2)
            srdhm(r, w, POLY, r[X4] + r[X3], T.int32(715827883))
            r[POLY] = r[POLY] + r[X2]
            rdpot(r, POLY, POLY, 1)
            srdhm(r, w, RES, T.int32(1895147668), r[X] + r[POLY])
            r[RES] = r[RES] + T.int32(1895147668)
            r[REM] = r[MOD] - r[A]
            barrel(r, w, 0)
            barrel(r, w, 1)
            barrel(r, w, 2)
            barrel(r, w, 3)
            barrel(r, w, 4)
            barrel(r, w, 5)
            barrel(r, w, 6)
            r[E] = T.if_then_else(r[A] == T.int32(0), T.int32(int32_max), r[RES])
        else:
            r[E] = T.int32(0)

    @T.prim_func(private=True, check_well_formed=False)
    def softmax(x_nd: T.Buffer(shape, "int8"), y_nd: T.Buffer(shape, "int8"),
                diff_min: T.int32, input_factor: T.int32, input_multiplier: T.int32,
                output_right_shift: T.int32, output_multiplier: T.int32,
                output_zero_point: T.int32, qmin: T.int32, qmax: T.int32):
        with T.sblock("root"):
            x = T.decl_buffer((flat,), "int8", data=x_nd.data)
            y = T.decl_buffer((flat,), "int8", data=y_nd.data)
            r = T.alloc_buffer((20,), "int32")
            w = T.alloc_buffer((1,), "int64")
            for row in range(rows):
                r[MAX] = T.int32(-128)
                for j in range(depth):
                    r[MAX] = T.max(r[MAX], T.Cast("int32", x[row * depth + j]))
                r[SUM] = T.int32(0)
                for j in range(depth):
                    exp_of(r, w, T.Cast("int32", x[row * depth + j]) - r[MAX],
                           diff_min, input_factor, input_multiplier)
                    rdpot(r, TMP, E, ACCUMULATION_INTEGER_BITS)
                    r[SUM] = r[SUM] + r[TMP]
                # GetReciprocal: bits = 12 - clz(sum); 1 / (1 + x) of the normalised sum
                r[BITS] = T.int32(0)
                for k in range(31):
                    if T.shift_right(r[SUM], k) > T.int32(0):
                        r[BITS] = k + 1
                r[BITS] = r[BITS] - T.int32(32 - ACCUMULATION_INTEGER_BITS)
                # the rounding half sum of (sum << headroom) - 2^31 and 2^31 - 1: (sum << headroom) / 2
                w[0] = T.shift_left(T.Cast("int64", r[SUM]),
                                    T.Cast("int64", T.int32(ACCUMULATION_INTEGER_BITS) - r[BITS]))
                r[HALF] = T.Cast("int32", T.shift_right(w[0], T.int64(1)))
                srdhm(r, w, REC, r[HALF], T.int32(-1010580540))
                r[REC] = r[REC] + T.int32(1515870810)
                for _ in range(3):
                    srdhm(r, w, TMP, r[HALF], r[REC])
                    r[TMP] = T.int32(1 << 29) - r[TMP]
                    srdhm(r, w, TMP, r[REC], r[TMP])
                    saturating_shl(r, TMP, TMP, 2)
                    r[REC] = r[REC] + r[TMP]
                saturating_shl(r, REC, REC, 1)
                r[RSH] = output_right_shift + r[BITS]
                r[MUL] = output_multiplier
                if r[RSH] > T.int32(int8.MAX_RIGHT_SHIFT):
                    r[MUL] = T.shift_right(r[MUL], r[RSH] - T.int32(int8.MAX_RIGHT_SHIFT))
                    r[RSH] = T.int32(int8.MAX_RIGHT_SHIFT)
                for j in range(depth):
                    exp_of(r, w, T.Cast("int32", x[row * depth + j]) - r[MAX],
                           diff_min, input_factor, input_multiplier)
                    srdhm(r, w, RAW, r[REC], r[E])
                    w[0] = T.Cast("int64", r[RAW]) * T.Cast("int64", r[MUL])
                    w[0] = T.shift_right(
                        w[0] + T.shift_left(T.int64(1), T.Cast("int64", r[RSH] - 1)) - T.int64(1)
                        + T.bitwise_and(T.shift_right(w[0], T.Cast("int64", r[RSH])), T.int64(1)),
                        T.Cast("int64", r[RSH]))
                    r[Q] = T.Cast("int32", w[0]) + output_zero_point
                    y[row * depth + j] = T.Cast("int8", T.max(T.min(r[Q], qmax), qmin))

    return softmax
