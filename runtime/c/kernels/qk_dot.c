/* The dot-product micro-kernel of the convolutions, one version per ISA, and the store of
 * a requantized 2x2 (pixels x channels) block. Blocking 2 pixels x 2 channels loads each
 * input word once for two channels and each weight word once for two pixels. */
#include <string.h>

#include "qk_internal.h"

#if defined(QK_ISA_DSP)
/* Four int8 values as one word (an unaligned LDR is fine on M3/M4/M7/M33). */
QK_INLINE int32_t qk_read_word(const int8_t *p) {
  int32_t v;
  memcpy(&v, p, sizeof(v));
  return v;
}

void qk_dot_2x2(const int8_t *x0, const int8_t *x1, const int8_t *w0, const int8_t *w1,
                int32_t len, int32_t acc[4]) {
  int32_t a00 = acc[0], a01 = acc[1], a10 = acc[2], a11 = acc[3];
  int32_t i = 0;
  /* SXTB16 splits bytes (b0 b1 b2 b3) into halfwords (b0, b2) and, rotated by 8,
   * (b1, b3); SMLAD then adds two 16x16 products. The same split of input and weight
   * words pairs matching elements, so no offline reordering is needed. */
  for (; i + 4 <= len; i += 4) {
    const int32_t xw0 = qk_read_word(x0 + i), xw1 = qk_read_word(x1 + i);
    const int32_t ww0 = qk_read_word(w0 + i), ww1 = qk_read_word(w1 + i);
    const int32_t x0e = (int32_t)__sxtb16(xw0), x0o = (int32_t)__sxtb16(qk_ror8(xw0));
    const int32_t x1e = (int32_t)__sxtb16(xw1), x1o = (int32_t)__sxtb16(qk_ror8(xw1));
    const int32_t w0e = (int32_t)__sxtb16(ww0), w0o = (int32_t)__sxtb16(qk_ror8(ww0));
    const int32_t w1e = (int32_t)__sxtb16(ww1), w1o = (int32_t)__sxtb16(qk_ror8(ww1));
    a00 = __smlad(x0e, w0e, a00);
    a00 = __smlad(x0o, w0o, a00);
    a01 = __smlad(x0e, w1e, a01);
    a01 = __smlad(x0o, w1o, a01);
    a10 = __smlad(x1e, w0e, a10);
    a10 = __smlad(x1o, w0o, a10);
    a11 = __smlad(x1e, w1e, a11);
    a11 = __smlad(x1o, w1o, a11);
  }
  for (; i < len; ++i) {
    a00 += x0[i] * w0[i];
    a01 += x0[i] * w1[i];
    a10 += x1[i] * w0[i];
    a11 += x1[i] * w1[i];
  }
  acc[0] = a00, acc[1] = a01, acc[2] = a10, acc[3] = a11;
}

#elif defined(QK_ISA_MVE)
void qk_dot_2x2(const int8_t *x0, const int8_t *x1, const int8_t *w0, const int8_t *w1,
                int32_t len, int32_t acc[4]) {
  int32_t a00 = acc[0], a01 = acc[1], a10 = acc[2], a11 = acc[3];
  int32_t i = 0;
  /* VMLADAVA.S8: 16 int8 products summed into a scalar accumulator. */
  for (; i + 16 <= len; i += 16) {
    const int8x16_t vx0 = vldrbq_s8(x0 + i), vx1 = vldrbq_s8(x1 + i);
    const int8x16_t vw0 = vldrbq_s8(w0 + i), vw1 = vldrbq_s8(w1 + i);
    a00 = vmladavaq_s8(a00, vx0, vw0);
    a01 = vmladavaq_s8(a01, vx0, vw1);
    a10 = vmladavaq_s8(a10, vx1, vw0);
    a11 = vmladavaq_s8(a11, vx1, vw1);
  }
  if (i < len) { /* tail: predicated loads read nothing past the end */
    const mve_pred16_t p = vctp8q((uint32_t)(len - i));
    const int8x16_t vx0 = vldrbq_z_s8(x0 + i, p), vx1 = vldrbq_z_s8(x1 + i, p);
    const int8x16_t vw0 = vldrbq_z_s8(w0 + i, p), vw1 = vldrbq_z_s8(w1 + i, p);
    a00 = vmladavaq_s8(a00, vx0, vw0);
    a01 = vmladavaq_s8(a01, vx0, vw1);
    a10 = vmladavaq_s8(a10, vx1, vw0);
    a11 = vmladavaq_s8(a11, vx1, vw1);
  }
  acc[0] = a00, acc[1] = a01, acc[2] = a10, acc[3] = a11;
}

#elif defined(QK_ISA_NEON)
void qk_dot_2x2(const int8_t *x0, const int8_t *x1, const int8_t *w0, const int8_t *w1,
                int32_t len, int32_t acc[4]) {
  int32x4_t v00 = vdupq_n_s32(0), v01 = v00, v10 = v00, v11 = v00;
  int32_t i = 0;
  /* 8 int8 x int8 → int16 products (exact: |x w| <= 2^14), pairwise-added into int32. */
  for (; i + 8 <= len; i += 8) {
    const int8x8_t vx0 = vld1_s8(x0 + i), vx1 = vld1_s8(x1 + i);
    const int8x8_t vw0 = vld1_s8(w0 + i), vw1 = vld1_s8(w1 + i);
    v00 = vpadalq_s16(v00, vmull_s8(vx0, vw0));
    v01 = vpadalq_s16(v01, vmull_s8(vx0, vw1));
    v10 = vpadalq_s16(v10, vmull_s8(vx1, vw0));
    v11 = vpadalq_s16(v11, vmull_s8(vx1, vw1));
  }
  int32_t a00 = acc[0] + vaddvq_s32(v00), a01 = acc[1] + vaddvq_s32(v01);
  int32_t a10 = acc[2] + vaddvq_s32(v10), a11 = acc[3] + vaddvq_s32(v11);
  for (; i < len; ++i) {
    a00 += x0[i] * w0[i];
    a01 += x0[i] * w1[i];
    a10 += x1[i] * w0[i];
    a11 += x1[i] * w1[i];
  }
  acc[0] = a00, acc[1] = a01, acc[2] = a10, acc[3] = a11;
}

#elif defined(QK_ISA_AVX2)
QK_INLINE int32_t qk_hsum256(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4e));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xb1));
  return _mm_cvtsi128_si32(s);
}

void qk_dot_2x2(const int8_t *x0, const int8_t *x1, const int8_t *w0, const int8_t *w1,
                int32_t len, int32_t acc[4]) {
  __m256i v00 = _mm256_setzero_si256(), v01 = v00, v10 = v00, v11 = v00;
  int32_t i = 0;
  /* 16 int8 widened to int16; VPMADDWD adds adjacent int16 products into int32. */
  for (; i + 16 <= len; i += 16) {
    const __m256i vx0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(x0 + i)));
    const __m256i vx1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(x1 + i)));
    const __m256i vw0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(w0 + i)));
    const __m256i vw1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(w1 + i)));
    v00 = _mm256_add_epi32(v00, _mm256_madd_epi16(vx0, vw0));
    v01 = _mm256_add_epi32(v01, _mm256_madd_epi16(vx0, vw1));
    v10 = _mm256_add_epi32(v10, _mm256_madd_epi16(vx1, vw0));
    v11 = _mm256_add_epi32(v11, _mm256_madd_epi16(vx1, vw1));
  }
  int32_t a00 = acc[0] + qk_hsum256(v00), a01 = acc[1] + qk_hsum256(v01);
  int32_t a10 = acc[2] + qk_hsum256(v10), a11 = acc[3] + qk_hsum256(v11);
  for (; i < len; ++i) {
    a00 += x0[i] * w0[i];
    a01 += x0[i] * w1[i];
    a10 += x1[i] * w0[i];
    a11 += x1[i] * w1[i];
  }
  acc[0] = a00, acc[1] = a01, acc[2] = a10, acc[3] = a11;
}

#else /* portable C */
void qk_dot_2x2(const int8_t *x0, const int8_t *x1, const int8_t *w0, const int8_t *w1,
                int32_t len, int32_t acc[4]) {
  int32_t a00 = acc[0], a01 = acc[1], a10 = acc[2], a11 = acc[3];
  for (int32_t i = 0; i < len; ++i) {
    const int32_t xa = x0[i], xb = x1[i], wa = w0[i], wb = w1[i];
    a00 += xa * wa;
    a01 += xa * wb;
    a10 += xb * wa;
    a11 += xb * wb;
  }
  acc[0] = a00, acc[1] = a01, acc[2] = a10, acc[3] = a11;
}
#endif

void qk_store_2x2(const int32_t acc[4], const qanas_requant_t *rq, int32_t o,
                  int32_t two_channels, int8_t *out0, int8_t *out1) {
  const int32_t zp = rq->output_zero_point, lo = rq->qmin, hi = rq->qmax;
  const int32_t m0 = rq->multiplier[o], s0 = rq->shift[o];
  if (out0 != 0) {
    out0[o] = (int8_t)qk_requantize(acc[0], m0, s0, zp, lo, hi);
  }
  if (out1 != 0) {
    out1[o] = (int8_t)qk_requantize(acc[2], m0, s0, zp, lo, hi);
  }
  if (two_channels) {
    const int32_t m1 = rq->multiplier[o + 1], s1 = rq->shift[o + 1];
    if (out0 != 0) {
      out0[o + 1] = (int8_t)qk_requantize(acc[1], m1, s1, zp, lo, hi);
    }
    if (out1 != 0) {
      out1[o + 1] = (int8_t)qk_requantize(acc[3], m1, s1, zp, lo, hi);
    }
  }
}
