/* Element-wise add/sub and mul of int8 tensors, with an optional per-channel broadcast of
 * the second operand (NHWC: b[i % b_channels], e.g. a squeeze-excite gate). These are
 * bound by memory traffic and by the 64-bit rescale of each element (the add's shared
 * shift keeps Ma (a - za) + Mb (b - zb) exact in int64), so they are plain C. */
#include "qk_internal.h"

qanas_status_t qanas_add_s8(int32_t count, const int8_t *a, const int8_t *b,
                            int32_t b_channels, const qanas_add_params_t *p,
                            int8_t *output) {
  if (a == 0 || b == 0 || p == 0 || output == 0 || count < 0 || b_channels < 0 ||
      p->right_shift < 1 || p->right_shift > 62) {
    return QANAS_ERROR_BAD_ARGUMENT;
  }
  const int64_t mb = p->subtract ? -(int64_t)p->b_multiplier : (int64_t)p->b_multiplier;
  for (int32_t i = 0, j = 0; i < count; ++i) {
    const int64_t sum = (int64_t)(a[i] - p->a_zero_point) * p->a_multiplier +
                        (int64_t)(b[j] - p->b_zero_point) * mb;
    int64_t q = qk_rounding_right_shift64(sum, p->right_shift) + p->output_zero_point;
    q = q < p->qmin ? p->qmin : q;
    output[i] = (int8_t)(q > p->qmax ? p->qmax : q);
    j = (b_channels > 0 && j + 1 == b_channels) ? 0 : j + 1;
  }
  return QANAS_OK;
}

qanas_status_t qanas_mul_s8(int32_t count, const int8_t *a, const int8_t *b,
                            int32_t b_channels, const qanas_mul_params_t *p,
                            int8_t *output) {
  if (a == 0 || b == 0 || p == 0 || output == 0 || count < 0 || b_channels < 0) {
    return QANAS_ERROR_BAD_ARGUMENT;
  }
  for (int32_t i = 0, j = 0; i < count; ++i) {
    const int32_t prod = (a[i] - p->a_zero_point) * (b[j] - p->b_zero_point);
    output[i] = (int8_t)qk_requantize(prod, p->multiplier, p->shift, p->output_zero_point,
                                      p->qmin, p->qmax);
    j = (b_channels > 0 && j + 1 == b_channels) ? 0 : j + 1;
  }
  return QANAS_OK;
}
