/* Element-wise add/sub and mul of int8 tensors, with an optional per-channel broadcast of
 * the second operand (NHWC: b[i % b_channels], e.g. a squeeze-excite gate). These are
 * bound by memory traffic and by the 64-bit rescale of each element (the add's shared
 * shift keeps Ma (a - za) + Mb (b - zb) exact in int64), so they are plain C. */
#include "qk_internal.h"

/* The add in 32-bit arithmetic, exact for shared shifts 17 <= n <= 46 (a largest scale
 * ratio in [2^-16, 2^14); int8.shared_shift_multipliers gives n = 31 for one in
 * [0.5, 1)): each multiplier split as M = Mh 2^16 + Ml (0 <= Ml < 2^16) gives
 * S = Ma da + Mb db = H 2^16 + L with H = Mha da + Mhb db and L = Mla da + Mlb db, both
 * well inside int32 (|d| <= 255). S / 2^n rounded half to even depends on S's bits below
 * bit 16 only through whether they are all zero, so it is that of y / 2^(n - 15) with
 * y = 2 (H + (L >> 16)) + (L mod 2^16 != 0) (|y| < 2^26): one 32-bit rounding shift, no
 * 64-bit product (69 -> ~20 instructions per element on a Cortex-M4). */
static void qk_add_narrow(int32_t count, const int8_t *a, const int8_t *b, int32_t b_channels,
                          const qanas_add_params_t *p, int32_t mb, int8_t *output) {
  const int32_t mah = p->a_multiplier >> 16, mal = p->a_multiplier & 0xffff;
  const int32_t mbh = mb >> 16, mbl = mb & 0xffff;
  const int32_t k = p->right_shift - 15, half = (1 << (k - 1)) - 1;
  const int32_t za = p->a_zero_point, zb = p->b_zero_point, zy = p->output_zero_point;
  const int32_t lo = p->qmin, hi = p->qmax;
#if defined(QK_ISA_MVE)
  if (b_channels == 0) { /* 4 lanes; the half-even shift as in qk_mve_requantize */
    const int32x4_t neg_k = vdupq_n_s32(-k);
    for (int32_t i = 0; i < count; i += 4) {
      const mve_pred16_t pr = vctp32q((uint32_t)(count - i));
      const int32x4_t da = vsubq_n_s32(vldrbq_z_s32(a + i, pr), za);
      const int32x4_t db = vsubq_n_s32(vldrbq_z_s32(b + i, pr), zb);
      const int32x4_t high = vmlaq_n_s32(vmulq_n_s32(da, mah), db, mbh);
      const int32x4_t low = vmlaq_n_s32(vmulq_n_s32(da, mal), db, mbl);
      const uint32x4_t sticky = vminq_u32(
          vreinterpretq_u32_s32(vandq_s32(low, vdupq_n_s32(0xffff))), vdupq_n_u32(1));
      const int32x4_t y = vaddq_s32(vshlq_n_s32(vaddq_s32(high, vshrq_n_s32(low, 16)), 1),
                                    vreinterpretq_s32_u32(sticky));
      const int32x4_t even = vbicq_s32(vdupq_n_s32(1), vshlq_s32(y, neg_k));
      int32x4_t q = vaddq_n_s32(vrshlq_s32(vsubq_s32(y, even), neg_k), zy);
      q = vminq_s32(vmaxq_s32(q, vdupq_n_s32(lo)), vdupq_n_s32(hi));
      vstrbq_p_s32(output + i, q, pr);
    }
    (void)half;
    return;
  }
#endif
#define QK_ADD_NARROW(A, B)                                                        \
  do {                                                                             \
    const int32_t da = (A) - za, db = (B) - zb;                                    \
    const int32_t high = mah * da + mbh * db, low = mal * da + mbl * db;           \
    const int32_t y = 2 * (high + (low >> 16)) + ((low & 0xffff) != 0);            \
    int32_t q = ((y + half + ((y >> k) & 1)) >> k) + zy;                           \
    q = q < lo ? lo : q;                                                           \
    output[i] = (int8_t)(q > hi ? hi : q);                                         \
  } while (0)
  if (b_channels == 0) { /* no broadcast: no second index to wrap */
    for (int32_t i = 0; i < count; ++i) {
      QK_ADD_NARROW(a[i], b[i]);
    }
    return;
  }
  for (int32_t i = 0, j = 0; i < count; ++i) {
    QK_ADD_NARROW(a[i], b[j]);
    j = j + 1 == b_channels ? 0 : j + 1;
  }
#undef QK_ADD_NARROW
}

qanas_status_t qanas_add_s8(int32_t count, const int8_t *a, const int8_t *b,
                            int32_t b_channels, const qanas_add_params_t *p,
                            int8_t *output) {
  if (a == 0 || b == 0 || p == 0 || output == 0 || count < 0 || b_channels < 0 ||
      p->right_shift < 1 || p->right_shift > 62) {
    return QANAS_ERROR_BAD_ARGUMENT;
  }
  const int64_t mb = p->subtract ? -(int64_t)p->b_multiplier : (int64_t)p->b_multiplier;
  if (p->right_shift >= 17 && p->right_shift <= 46 && mb >= -INT32_MAX && mb <= INT32_MAX) {
    qk_add_narrow(count, a, b, b_channels, p, (int32_t)mb, output);
    return QANAS_OK;
  }
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
