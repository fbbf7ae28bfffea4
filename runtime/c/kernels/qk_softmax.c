/* Int8 softmax over the last axis: TFLite Micro's fixed-point softmax (gemmlowp's Q-format
 * exp and reciprocal), requantized once to the output grid. The integers are those of
 * compiler/reference/softmax.py and of the compiler's TIR kernel
 * (compiler/passes/softmax_kernel.py); docs/int8-arithmetic.md, "Softmax", walks through
 * the steps. Plain C: attention rows are short, and each exp is a chain of dependent
 * 64-bit products that no SIMD lane layout shortens. */
#include "qk_internal.h"

/* Two's-complement int32 addition (gemmlowp's raw adds wrap; signed overflow is UB). */
QK_INLINE int32_t qk_wrap_add(int32_t a, int32_t b) {
  return (int32_t)((uint32_t)a + (uint32_t)b);
}

/* gemmlowp SaturatingRoundingDoublingHighMul: round(a * b / 2^31), ties away from zero. */
QK_INLINE int32_t qk_srdhm(int32_t a, int32_t b) {
  if (a == b && a == INT32_MIN) {
    return INT32_MAX;
  }
  const int64_t ab = (int64_t)a * b;
  const int64_t nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
  return (int32_t)((ab + nudge) / ((int64_t)1 << 31)); /* C division truncates */
}

/* gemmlowp RoundingDivideByPOT: x / 2^exponent rounded half away from zero. */
QK_INLINE int32_t qk_rounding_divide_by_pot(int32_t x, int32_t exponent) {
  const int32_t mask = (int32_t)((1u << exponent) - 1u);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0);
  return (x >> exponent) + (remainder > threshold);
}

/* x * 2^exponent saturated to int32 (gemmlowp SaturatingRoundingMultiplyByPOT, exponent > 0). */
QK_INLINE int32_t qk_saturating_shift_left(int32_t x, int32_t exponent) {
  const int32_t threshold = (int32_t)((1u << (31 - exponent)) - 1u);
  if (x > threshold) {
    return INT32_MAX;
  }
  if (x < -threshold) {
    return INT32_MIN;
  }
  return (int32_t)((uint32_t)x << exponent);
}

/* exp(a) for Q0.31 a in [-1/4, 0): gemmlowp's Taylor polynomial around -1/8. */
static int32_t qk_exp_on_interval(int32_t a) {
  const int32_t constant_term = 1895147668; /* exp(-1/8) */
  const int32_t one_third = 715827883;
  const int32_t x = qk_wrap_add(a, 1 << 28);
  const int32_t x2 = qk_srdhm(x, x);
  const int32_t x3 = qk_srdhm(x2, x);
  const int32_t x4_over_4 = qk_rounding_divide_by_pot(qk_srdhm(x2, x2), 2);
  const int32_t poly = qk_rounding_divide_by_pot(
      qk_wrap_add(qk_srdhm(qk_wrap_add(x4_over_4, x3), one_third), x2), 1);
  return qk_wrap_add(constant_term, qk_srdhm(constant_term, qk_wrap_add(x, poly)));
}

/* gemmlowp exp_on_negative_values: Q5.26 a <= 0 -> Q0.31 exp(a). The fractional quarter is
 * the polynomial; each set integer bit multiplies by exp(-2^k). */
static int32_t qk_exp_on_negative_values(int32_t a) {
  static const int32_t kBarrel[7] = {1672461947, 1302514674, 790015084, 290630308,
                                     39332535,   720401,     242};
  const int32_t one_quarter = 1 << 24;
  const int32_t mod_quarter = (a & (one_quarter - 1)) - one_quarter;
  int32_t result = qk_exp_on_interval(qk_saturating_shift_left(mod_quarter, 5));
  const int32_t remainder = qk_wrap_add(mod_quarter, -a);
  for (int32_t k = 0; k < 7; ++k) { /* bits 24 .. 30: exp(-1/4) .. exp(-16) */
    if ((remainder >> (24 + k)) & 1) {
      result = qk_srdhm(result, kBarrel[k]);
    }
  }
  return a == 0 ? INT32_MAX : result;
}

/* gemmlowp one_over_one_plus_x_for_x_in_0_1 of the normalised sum, given as its half
 * (sum << headroom) / 2 in [2^30, 2^31): three Newton steps from 48/17 - 32/17 d (Q2.29). */
static int32_t qk_reciprocal(int32_t half_denominator) {
  int32_t x = qk_wrap_add(1515870810, qk_srdhm(half_denominator, -1010580540));
  for (int32_t i = 0; i < 3; ++i) {
    const int32_t one_minus = qk_wrap_add(1 << 29, -qk_srdhm(half_denominator, x));
    x = qk_wrap_add(x, qk_saturating_shift_left(qk_srdhm(x, one_minus), 2));
  }
  return qk_saturating_shift_left(x, 1);
}

/* exp of the difference d = x - max in Q0.31, 0 below diff_min. */
QK_INLINE int32_t qk_softmax_exp(const qanas_softmax_params_t *p, int32_t d) {
  if (d < p->diff_min) {
    return 0;
  }
  return qk_exp_on_negative_values(
      qk_srdhm(d * (1 << p->input_left_shift), p->input_multiplier));
}

qanas_status_t qanas_softmax_s8(const qanas_softmax_params_t *p, const int8_t *input,
                                int8_t *output) {
  if (p == 0 || input == 0 || output == 0 || p->rows < 0 || p->depth < 1 ||
      p->input_left_shift < 0 || p->input_left_shift > 30 || p->output_right_shift < 1 ||
      p->output_right_shift > 62) {
    return QANAS_ERROR_BAD_ARGUMENT;
  }
  for (int32_t r = 0; r < p->rows; ++r) {
    const int8_t *x = input + (int64_t)r * p->depth;
    int8_t *y = output + (int64_t)r * p->depth;
    int32_t max = -128;
    for (int32_t j = 0; j < p->depth; ++j) {
      max = x[j] > max ? x[j] : max;
    }
    int32_t sum = 0; /* Q12.19; the row's largest entry adds exactly 1.0 */
    for (int32_t j = 0; j < p->depth; ++j) {
      sum = qk_wrap_add(sum, qk_rounding_divide_by_pot(qk_softmax_exp(p, x[j] - max), 12));
    }
    /* GetReciprocal: sum = (1 + f) 2^bits with f in [0, 1); bits = 12 - headroom. */
    const int32_t headroom = __builtin_clz((uint32_t)sum);
    const int32_t bits = 12 - headroom;
    const int32_t reciprocal =
        qk_reciprocal((int32_t)(((uint64_t)(uint32_t)sum << headroom) >> 1));
    /* One rounding to the output grid: p 2^-(31 + bits) / s_y with the multiplier of
     * 2^-31 / s_y and its right shift plus bits; past 62 the multiplier drops low bits,
     * as compiler.int8.quantize_multiplier does. */
    int32_t multiplier = p->output_multiplier, shift = p->output_right_shift + bits;
    if (shift > 62) {
      multiplier = shift - 62 > 31 ? 0 : multiplier >> (shift - 62);
      shift = 62;
    }
    for (int32_t j = 0; j < p->depth; ++j) {
      const int32_t probability = qk_srdhm(reciprocal, qk_softmax_exp(p, x[j] - max));
      int64_t q = qk_rounding_right_shift64((int64_t)probability * multiplier, shift) +
                  p->output_zero_point;
      q = q < p->qmin ? p->qmin : q;
      y[j] = (int8_t)(q > p->qmax ? p->qmax : q);
    }
  }
  return QANAS_OK;
}
