"""Integer-only softmax as TFLite Micro computes it (gemmlowp fixed point), in NumPy.

The steps are those of TFLite's reference int8 softmax (`reference_ops::Softmax`,
which TFLite Micro runs):

1. ``diff = x - max(x)`` per row (int32), rescaled by ``beta · s_x · 2^26`` as a
   multiplier greater than one (`PreprocessSoftmaxScaling` with 5 integer bits), entries
   below ``diff_min`` (`CalculateInputRadius`) contribute nothing;
2. ``exp`` of the Q5.26 difference by gemmlowp's `exp_on_negative_values` (a polynomial on
   [-1/4, 0) and a barrel shifter of exact constants), summed in Q12.19;
3. the reciprocal of the sum by `GetReciprocal` (normalise, three Newton steps of
   `one_over_one_plus_x_for_x_in_0_1`), multiplied with each ``exp`` into a Q0.31
   probability times ``2^-num_bits_over_unit``.

TFLite Micro then divides by a power of two to a fixed output scale of 1/256. Our
models calibrate the softmax output scale (about 1/255 for uint8), so the last step here
is the project's one-rounding requantization of that Q0.31 probability to any output
scale (`compiler.int8.requantize`); with scale 1/256 it is TFLite's rounding division.
Every operation is on int64 arrays holding int32 values, as gemmlowp's int32 code does.
"""

from __future__ import annotations

import math

import numpy as np

from compiler import int8

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
SCALED_DIFF_INTEGER_BITS = 5
ACCUMULATION_INTEGER_BITS = 12


def srdhm(a, b) -> np.ndarray:
    """gemmlowp SaturatingRoundingDoublingHighMul on int32 values (C truncating division)."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    total = ab + nudge
    high = np.sign(total) * (np.abs(total) >> 31)
    return np.where((a == b) & (a == INT32_MIN), INT32_MAX, high)


def rounding_divide_by_pot(x, exponent) -> np.ndarray:
    """gemmlowp RoundingDivideByPOT: ``x / 2^exponent`` rounded half away from zero."""
    x = np.asarray(x, np.int64)
    exponent = np.asarray(exponent, np.int64)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def saturating_shift_left(x, exponent: int) -> np.ndarray:
    """gemmlowp SaturatingRoundingMultiplyByPOT for a positive exponent (int32 saturation)."""
    x = np.asarray(x, np.int64)
    threshold = (1 << (31 - exponent)) - 1
    return np.where(x > threshold, INT32_MAX, np.where(x < -threshold, INT32_MIN, x << exponent))


def _wrap32(x) -> np.ndarray:
    """Two's-complement int32 wrap-around (gemmlowp's raw additions)."""
    return ((np.asarray(x, np.int64) + 2**31) % 2**32) - 2**31


def _exp_on_interval(a) -> np.ndarray:
    """exp(a) for Q0.31 ``a`` in [-1/4, 0): Taylor around -1/8 (gemmlowp constants)."""
    constant_term, one_third = 1895147668, 715827883
    x = _wrap32(a + (1 << 28))
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    x4_over_4 = rounding_divide_by_pot(x4, 2)
    poly = rounding_divide_by_pot(_wrap32(srdhm(_wrap32(x4_over_4 + x3), one_third) + x2), 1)
    return _wrap32(constant_term + srdhm(constant_term, _wrap32(x + poly)))


_BARREL = ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308), (2, 39332535),
           (3, 720401), (4, 242))


def exp_on_negative_values(a) -> np.ndarray:
    """gemmlowp exp_on_negative_values: Q5.26 ``a <= 0`` → Q0.31 ``exp(a)``."""
    a = np.asarray(a, np.int64)
    fractional_bits = 31 - SCALED_DIFF_INTEGER_BITS
    one_quarter = 1 << (fractional_bits - 2)
    mod_quarter = (a & (one_quarter - 1)) - one_quarter
    result = _exp_on_interval(saturating_shift_left(mod_quarter, SCALED_DIFF_INTEGER_BITS))
    remainder = _wrap32(mod_quarter - a)
    for exponent, multiplier in _BARREL:
        bit = (remainder >> (fractional_bits + exponent)) & 1
        result = np.where(bit != 0, srdhm(result, multiplier), result)
    return np.where(a == 0, INT32_MAX, result)


def _one_over_one_plus_x(a) -> np.ndarray:
    """gemmlowp one_over_one_plus_x_for_x_in_0_1: Q0.31 ``a`` → Q0.31 ``1 / (1 + a)``."""
    total = np.asarray(a, np.int64) + INT32_MAX  # RoundingHalfSum(a, One), C division
    adjusted = total + np.where(total >= 0, 1, -1)
    half_denominator = np.sign(adjusted) * (np.abs(adjusted) >> 1)
    x = _wrap32(1515870810 + srdhm(half_denominator, -1010580540))  # 48/17 - 32/17 · d (Q2.29)
    for _ in range(3):
        one_minus = _wrap32((1 << 29) - srdhm(half_denominator, x))
        x = _wrap32(x + saturating_shift_left(srdhm(x, one_minus), 2))
    return saturating_shift_left(x, 1)


def get_reciprocal(x) -> tuple[np.ndarray, np.ndarray]:
    """TFLite GetReciprocal of a positive Q12.19 sum: (Q0.31 scale, num_bits_over_unit)."""
    x = np.asarray(x, np.int64)
    headroom_plus_one = 32 - np.array([int(v).bit_length() for v in x.reshape(-1)],
                                      np.int64).reshape(x.shape)
    num_bits_over_unit = ACCUMULATION_INTEGER_BITS - headroom_plus_one
    shifted_minus_one = _wrap32((x << headroom_plus_one) - (1 << 31))
    return _one_over_one_plus_x(shifted_minus_one), num_bits_over_unit


def _quantize_multiplier_greater_than_one(real: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplierGreaterThanOne: (Q0.31 multiplier, left shift >= 0)."""
    mantissa, shift = math.frexp(real)
    fixed = int(math.floor(mantissa * 2**31 + 0.5))  # std::round, positive
    if fixed == 2**31:
        fixed, shift = fixed // 2, shift + 1
    return fixed, shift


def softmax_params(input_scale: float, beta: float = 1.0) -> tuple[int, int, int]:
    """`PreprocessSoftmaxScaling` and `CalculateInputRadius`: (multiplier, left shift, diff_min)."""
    real = min(beta * input_scale * (1 << (31 - SCALED_DIFF_INTEGER_BITS)), 2.0**31 - 1.0)
    multiplier, left_shift = _quantize_multiplier_greater_than_one(real)
    radius = ((1 << SCALED_DIFF_INTEGER_BITS) - 1) * (1 << (31 - SCALED_DIFF_INTEGER_BITS)) \
        / (1 << left_shift)
    return multiplier, left_shift, -int(math.floor(radius))


def softmax_probabilities(q: np.ndarray, input_scale: float, axis: int = -1,
                          beta: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Integer softmax of int8 ``q`` along `axis`: (Q0.31 raw, num_bits_over_unit per row).

    The probability of each entry is ``raw · 2^-(31 + num_bits_over_unit)``; entries below
    the input radius are exactly 0.
    """
    multiplier, left_shift, diff_min = softmax_params(input_scale, beta)
    q = np.moveaxis(np.asarray(q, np.int64), axis, -1)
    diff = q - q.max(axis=-1, keepdims=True)
    valid = diff >= diff_min
    scaled = srdhm(np.where(valid, diff, 0) * (1 << left_shift), multiplier)
    exps = np.where(valid, exp_on_negative_values(scaled), 0)
    sums = _wrap32(rounding_divide_by_pot(exps, ACCUMULATION_INTEGER_BITS).sum(axis=-1,
                                                                             keepdims=True))
    scale, bits = get_reciprocal(sums)
    raw = np.where(valid, srdhm(scale, exps), 0)
    return np.moveaxis(raw, -1, axis), np.moveaxis(np.broadcast_to(bits, raw.shape), -1, axis)


def softmax_int8(q: np.ndarray, input_scale: float, out_scale: float, out_zero_point: int,
                 qmin: int, qmax: int, axis: int = -1) -> np.ndarray:
    """Softmax of int8 ``q`` (any zero point: it cancels) requantized to the output grid."""
    raw, bits = softmax_probabilities(q, input_scale, axis)
    real = np.ldexp(1.0, -(31 + bits).astype(np.int64)) / np.float64(out_scale)
    mult, shift = int8.quantize_multiplier(real)
    return int8.requantize(raw, mult.astype(np.int64), shift.astype(np.int64), out_zero_point,
                           qmin, qmax)


__all__ = ["exp_on_negative_values", "get_reciprocal", "rounding_divide_by_pot",
           "softmax_int8", "softmax_params", "softmax_probabilities", "srdhm"]
