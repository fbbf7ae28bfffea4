/* The convolutions' micro-kernel, one version per ISA, and the store of a requantized
 * block. The micro-kernel is its own (static, out-of-line) function: inlined into a
 * convolution's loop nest, GCC spilled its pointers and accumulators to the stack inside
 * the inner loop; alone, everything stays in registers and the call is amortized over
 * the run. The store is inline (constant block indices keep the accumulators out of
 * memory).
 * Blocking QK_BLOCK_PX pixels x QK_BLOCK_CH channels loads each input word once for
 * several channels and, with two pixels, each weight word once for both. Included by
 * qk_conv.c and qk_matmul.c (the matmul runs on the same micro-kernels). */
#ifndef QANAS_KERNELS_BLOCK_H_
#define QANAS_KERNELS_BLOCK_H_

#include "qk_internal.h"

#if defined(QK_ISA_NEON) || defined(QK_ISA_AVX2)
/* rest[4 p + j] = sum over i in [i, len) of x_p[i] * w[j][i]: the bytes past the last
 * 8-byte step of the 2 x 4 vector dot products (rare), in scalar code. */
QK_INLINE void qk_dot_tail_2x4(const int8_t *x0, const int8_t *x1, const int8_t *const *w,
                               int32_t i, int32_t len, int32_t *rest) {
  for (int32_t j = 0; j < 8; ++j) {
    rest[j] = 0;
  }
  for (; i < len; ++i) {
    for (int32_t j = 0; j < 4; ++j) {
      rest[j] += x0[i] * w[j][i];
      rest[4 + j] += x1[i] * w[j][i];
    }
  }
}
#endif

#if defined(QK_ISA_DSP)
/* acc[0..3] += the 2 pixels x 2 rows dot products of x0, x1 with w0, w1 over len bytes. */
QK_INLINE void qk_dsp_dot_2x2(const int8_t *x0, const int8_t *x1, const int8_t *w0,
                              const int8_t *w1, int32_t len, int32_t *acc) {
  int32_t a00 = acc[0], a01 = acc[1], a10 = acc[2], a11 = acc[3];
#if QK_FULL_ASM
  const int32_t main_len = len & ~15, rest = len & 7;
  /* SXTB16 splits bytes (b0 b1 b2 b3) into halfwords (b0, b2) and, rotated by 8,
   * (b1, b3); SMLAD then adds two 16x16 products. The same split of input and weight
   * words pairs matching elements, so no offline reordering is needed.
   * The main loop is written out: 16 bytes per pass, 32 SXTB16 + 32 SMLAD + 16 LDR and
   * a 3-instruction loop test (the end pointer lives on the stack: the four pointers,
   * four accumulators and six split words take all 14 registers), then 8 bytes once if
   * left. GCC 12 kept one pointer on the stack instead and ran 25 instructions per 4
   * bytes. */
  int32_t t0, t1, t2, t3, t4, t5;
#define QK_DSP_4BYTES                              \
  "ldr %[t0], [%[w0]], #4\n\t"                   \
  "ldr %[t2], [%[w1]], #4\n\t"                   \
  "sxtb16 %[t1], %[t0], ror #8\n\t"              \
  "sxtb16 %[t0], %[t0]\n\t"                      \
  "sxtb16 %[t3], %[t2], ror #8\n\t"              \
  "sxtb16 %[t2], %[t2]\n\t"                      \
  "ldr %[t4], [%[x0]], #4\n\t"                   \
  "sxtb16 %[t5], %[t4]\n\t"                      \
  "sxtb16 %[t4], %[t4], ror #8\n\t"              \
  "smlad %[a00], %[t5], %[t0], %[a00]\n\t"       \
  "smlad %[a01], %[t5], %[t2], %[a01]\n\t"       \
  "smlad %[a00], %[t4], %[t1], %[a00]\n\t"       \
  "smlad %[a01], %[t4], %[t3], %[a01]\n\t"       \
  "ldr %[t4], [%[x1]], #4\n\t"                   \
  "sxtb16 %[t5], %[t4]\n\t"                      \
  "sxtb16 %[t4], %[t4], ror #8\n\t"              \
  "smlad %[a10], %[t5], %[t0], %[a10]\n\t"       \
  "smlad %[a11], %[t5], %[t2], %[a11]\n\t"       \
  "smlad %[a10], %[t4], %[t1], %[a10]\n\t"       \
  "smlad %[a11], %[t4], %[t3], %[a11]\n\t"
#define QK_DSP_OPERANDS                                                                  \
  : [x0] "+r"(x0), [x1] "+r"(x1), [w0] "+r"(w0), [w1] "+r"(w1), [a00] "+r"(a00),        \
    [a01] "+r"(a01), [a10] "+r"(a10), [a11] "+r"(a11), [t0] "=&r"(t0), [t1] "=&r"(t1),  \
    [t2] "=&r"(t2), [t3] "=&r"(t3), [t4] "=&r"(t4), [t5] "=&r"(t5)
  if (main_len != 0) {
    const int8_t *const x0_end = x0 + main_len;
    __asm__ volatile("1:\n\t" QK_DSP_4BYTES QK_DSP_4BYTES QK_DSP_4BYTES QK_DSP_4BYTES
                     "ldr %[t0], %[end]\n\t"
                     "cmp %[x0], %[t0]\n\t"
                     "bne 1b\n\t"
                     QK_DSP_OPERANDS
                     : [end] "m"(x0_end)
                     : "cc", "memory");
  }
  if (len & 8) {
    __asm__ volatile(QK_DSP_4BYTES QK_DSP_4BYTES QK_DSP_OPERANDS : : "memory");
  }
#undef QK_DSP_OPERANDS
#undef QK_DSP_4BYTES
#else
  const int32_t rest = len;
#endif
  /* The last len % 8 bytes (the pointers now point at them): rare, out of the way. */
  if (__builtin_expect(rest != 0, 0)) {
    int32_t i = 0;
    for (; i + 4 <= rest; i += 4) {
      const int32_t xw0 = qk_read_word(x0 + i), xw1 = qk_read_word(x1 + i);
      const int32_t ww0 = qk_read_word(w0 + i), ww1 = qk_read_word(w1 + i);
      const int32_t x0e = (int32_t)__sxtb16(xw0), x0o = qk_sxtb16_ror8(xw0);
      const int32_t x1e = (int32_t)__sxtb16(xw1), x1o = qk_sxtb16_ror8(xw1);
      const int32_t w0e = (int32_t)__sxtb16(ww0), w0o = qk_sxtb16_ror8(ww0);
      const int32_t w1e = (int32_t)__sxtb16(ww1), w1o = qk_sxtb16_ror8(ww1);
      a00 = __smlad(x0e, w0e, a00);
      a00 = __smlad(x0o, w0o, a00);
      a01 = __smlad(x0e, w1e, a01);
      a01 = __smlad(x0o, w1o, a01);
      a10 = __smlad(x1e, w0e, a10);
      a10 = __smlad(x1o, w0o, a10);
      a11 = __smlad(x1e, w1e, a11);
      a11 = __smlad(x1o, w1o, a11);
    }
    for (; i < rest; ++i) {
      a00 += x0[i] * w0[i];
      a01 += x0[i] * w1[i];
      a10 += x1[i] * w0[i];
      a11 += x1[i] * w1[i];
    }
  }
  acc[0] = a00, acc[1] = a01, acc[2] = a10, acc[3] = a11;
}

static QK_NOINLINE void qk_dot_block(const int8_t *x0, const int8_t *x1, const int8_t *w0,
                                      int32_t w_stride, int32_t rows, int32_t len,
                                      int32_t *acc) {
  qk_dsp_dot_2x2(x0, x1, w0, rows > 1 ? w0 + w_stride : w0, len, acc);
}

/* The DSP pointwise's 4-pixel block: each input word of the four pixels is split by
 * SXTB16 once per call into halfword pairs (xq, on the stack), so that the inner loop
 * splits only the weight word: per 4 input channels of one output channel, 1 LDR + 2
 * SXTB16 of weights, 4 LDRD of split inputs and 8 SMLAD, 15 instructions per 16 MACs
 * (the 2 x 2 block splits both: 20). */
#define QK_DSP_QUAD 4
/* Longest input the 4-pixel pointwise block takes (xq is 4 x in_c int16: 1 KB); longer
 * inputs run pixel pairs. */
#define QK_DSP_QUAD_MAX_IN 128

/* Words of a quad row of len bytes: the full words and, when len is not a multiple of 4
 * (and at least 4), a tail word, the row's last 4 bytes with those already in the last
 * full word zeroed (its weights are read in place at w + len - 4: no padding). */
QK_INLINE int32_t qk_dsp_quad_words(int32_t len) {
  return (len >> 2) + ((len & 3) != 0 && len >= 4);
}

/* Pixel p's split word: xq[2 p] and xq[2 p + 1] = SXTB16 halves (b0, b2), (b1, b3). */
QK_INLINE void qk_dsp_split(int32_t v, int32_t p, int32_t *xq) {
  xq[2 * p] = (int32_t)__sxtb16(v), xq[2 * p + 1] = qk_sxtb16_ror8(v);
}

/* xq[8 i + 2 p] and xq[8 i + 2 p + 1]: qk_dsp_split of word i of pixel p (x + p * stride),
 * for the qk_dsp_quad_words(len) words. */
static QK_MAYBE_UNUSED void qk_dsp_expand_quad(const int8_t *x, int32_t stride, int32_t len,
                                               int32_t *xq) {
  const int32_t words = len >> 2;
  for (int32_t i = 0; i < words; ++i, xq += 2 * QK_DSP_QUAD) {
    const int32_t v0 = qk_read_word(x + 4 * i), v1 = qk_read_word(x + stride + 4 * i);
    const int32_t v2 = qk_read_word(x + 2 * stride + 4 * i);
    const int32_t v3 = qk_read_word(x + 3 * stride + 4 * i);
    qk_dsp_split(v0, 0, xq), qk_dsp_split(v1, 1, xq);
    qk_dsp_split(v2, 2, xq), qk_dsp_split(v3, 3, xq);
  }
  if (qk_dsp_quad_words(len) > words) {
    const uint32_t keep = 0xffffffffu << (8 * (4 - (len & 3)));
    for (int32_t p = 0; p < QK_DSP_QUAD; ++p) {
      qk_dsp_split((int32_t)((uint32_t)qk_read_word(x + p * stride + len - 4) & keep), p, xq);
    }
  }
}

/* acc[p] += sum over the `words` full words (>= 1) of the split quad xq and weight row w
 * of x_p * w: one weight word against the four pixels, two words per loop pass. */
QK_INLINE void qk_dsp_dot_quad(const int32_t *xq, const int8_t *w, int32_t words,
                               int32_t *acc) {
  int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
  int32_t t, te, xe, xo;
#define QK_DSP_QUAD_WORD                           \
  "ldr %[t], [%[w]], #4\n\t"                     \
  "sxtb16 %[te], %[t]\n\t"                       \
  "sxtb16 %[t], %[t], ror #8\n\t"                \
  "ldrd %[xe], %[xo], [%[xq]], #8\n\t"           \
  "smlad %[a0], %[xe], %[te], %[a0]\n\t"         \
  "smlad %[a0], %[xo], %[t], %[a0]\n\t"          \
  "ldrd %[xe], %[xo], [%[xq]], #8\n\t"           \
  "smlad %[a1], %[xe], %[te], %[a1]\n\t"         \
  "smlad %[a1], %[xo], %[t], %[a1]\n\t"          \
  "ldrd %[xe], %[xo], [%[xq]], #8\n\t"           \
  "smlad %[a2], %[xe], %[te], %[a2]\n\t"         \
  "smlad %[a2], %[xo], %[t], %[a2]\n\t"          \
  "ldrd %[xe], %[xo], [%[xq]], #8\n\t"           \
  "smlad %[a3], %[xe], %[te], %[a3]\n\t"         \
  "smlad %[a3], %[xo], %[t], %[a3]\n\t"
#define QK_DSP_QUAD_OPERANDS                                                             \
  [xq] "+r"(xq), [w] "+r"(w), [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2),              \
      [a3] "+r"(a3), [t] "=&r"(t), [te] "=&r"(te), [xe] "=&r"(xe), [xo] "=&r"(xo)
  if (words & 1) {
    __asm__ volatile(QK_DSP_QUAD_WORD : QK_DSP_QUAD_OPERANDS : : "memory");
  }
  int32_t pairs = words >> 1;
  if (pairs != 0) {
    __asm__ volatile("1:\n\t" QK_DSP_QUAD_WORD QK_DSP_QUAD_WORD
                     "subs %[n], %[n], #1\n\t"
                     "bne 1b\n\t"
                     : QK_DSP_QUAD_OPERANDS, [n] "+r"(pairs)
                     :
                     : "cc", "memory");
  }
#undef QK_DSP_QUAD_OPERANDS
#undef QK_DSP_QUAD_WORD
  acc[0] = a0, acc[1] = a1, acc[2] = a2, acc[3] = a3;
}

#elif defined(QK_ISA_MVE)
static QK_NOINLINE void qk_dot_block(const int8_t *x0, const int8_t *x1, const int8_t *w0,
                                      int32_t w_stride, int32_t rows, int32_t len,
                                      int32_t *acc) {
  (void)x1;
  const int8_t *w1 = rows > 1 ? w0 + w_stride : w0;
  const int8_t *w2 = rows > 2 ? w1 + w_stride : w1;
  const int8_t *w3 = rows > 3 ? w2 + w_stride : w2;
  int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
  /* VMLADAVA.S8: 16 int8 products summed into a scalar accumulator. */
  int32_t i = 0;
  for (; i + 16 <= len; i += 16) {
    const int8x16_t vx = vldrbq_s8(x0);
    a0 = vmladavaq_s8(a0, vx, vldrbq_s8(w0));
    a1 = vmladavaq_s8(a1, vx, vldrbq_s8(w1));
    a2 = vmladavaq_s8(a2, vx, vldrbq_s8(w2));
    a3 = vmladavaq_s8(a3, vx, vldrbq_s8(w3));
    x0 += 16, w0 += 16, w1 += 16, w2 += 16, w3 += 16;
  }
  if (i < len) { /* the last, partial vector: predicated (VCTP), nothing past len is read */
    const mve_pred16_t p = vctp8q((uint32_t)(len - i));
    const int8x16_t vx = vldrbq_z_s8(x0, p);
    a0 = vmladavaq_s8(a0, vx, vldrbq_z_s8(w0, p));
    a1 = vmladavaq_s8(a1, vx, vldrbq_z_s8(w1, p));
    a2 = vmladavaq_s8(a2, vx, vldrbq_z_s8(w2, p));
    a3 = vmladavaq_s8(a3, vx, vldrbq_z_s8(w3, p));
  }
  acc[0] = a0, acc[1] = a1, acc[2] = a2, acc[3] = a3;
}

#elif defined(QK_ISA_NEON)
/* One step of qk_neon_dot_2x4: x0, x1 against the four rows at offset i, 8 bytes; int8 x
 * int8 -> int16 products (exact: |x w| <= 2^14) pairwise-added into int32 lanes. */
#define QK_NEON_STEP(i)                                                  \
  do {                                                                   \
    const int8x8_t vx0 = vld1_s8(x0 + (i)), vx1 = vld1_s8(x1 + (i));     \
    int8x8_t vw = vld1_s8(w0 + (i));                                     \
    a00 = vpadalq_s16(a00, vmull_s8(vx0, vw));                           \
    a10 = vpadalq_s16(a10, vmull_s8(vx1, vw));                           \
    vw = vld1_s8(w1 + (i));                                              \
    a01 = vpadalq_s16(a01, vmull_s8(vx0, vw));                           \
    a11 = vpadalq_s16(a11, vmull_s8(vx1, vw));                           \
    vw = vld1_s8(w2 + (i));                                              \
    a02 = vpadalq_s16(a02, vmull_s8(vx0, vw));                           \
    a12 = vpadalq_s16(a12, vmull_s8(vx1, vw));                           \
    vw = vld1_s8(w3 + (i));                                              \
    a03 = vpadalq_s16(a03, vmull_s8(vx0, vw));                           \
    a13 = vpadalq_s16(a13, vmull_s8(vx1, vw));                           \
  } while (0)

/* The 2 pixels x 4 rows dot products of x0, x1 with w0 + j * w_stride (j < 4; rows past
 * `rows` repeat the last) over len bytes: sums.val[p] lane j is pixel p, row j. 8 bytes
 * per step, len % 8 in scalar code; the eight accumulators reduced by two levels of
 * ADDP. */
QK_INLINE int32x4x2_t qk_neon_dot_2x4(const int8_t *x0, const int8_t *x1, const int8_t *w0,
                                      int32_t w_stride, int32_t rows, int32_t len) {
  const int8_t *w1 = rows > 1 ? w0 + w_stride : w0;
  const int8_t *w2 = rows > 2 ? w1 + w_stride : w1;
  const int8_t *w3 = rows > 3 ? w2 + w_stride : w2;
  int32x4_t a00 = vdupq_n_s32(0), a01 = a00, a02 = a00, a03 = a00;
  int32x4_t a10 = a00, a11 = a00, a12 = a00, a13 = a00;
  int32_t i = 0;
  for (; i + 8 <= len; i += 8) {
    QK_NEON_STEP(i);
  }
  int32x4x2_t sums;
  sums.val[0] = vpaddq_s32(vpaddq_s32(a00, a01), vpaddq_s32(a02, a03));
  sums.val[1] = vpaddq_s32(vpaddq_s32(a10, a11), vpaddq_s32(a12, a13));
  if (__builtin_expect(i < len, 0)) {
    const int8_t *const w[4] = {w0, w1, w2, w3};
    int32_t rest[8];
    qk_dot_tail_2x4(x0, x1, w, i, len, rest);
    sums.val[0] = vaddq_s32(sums.val[0], vld1q_s32(rest));
    sums.val[1] = vaddq_s32(sums.val[1], vld1q_s32(rest + 4));
  }
  return sums;
}
#undef QK_NEON_STEP

static QK_NOINLINE void qk_dot_block(const int8_t *x0, const int8_t *x1, const int8_t *w0,
                                      int32_t w_stride, int32_t rows, int32_t len,
                                      int32_t *acc) {
  const int32x4x2_t sums = qk_neon_dot_2x4(x0, x1, w0, w_stride, rows, len);
  vst1q_s32(acc, vaddq_s32(vld1q_s32(acc), sums.val[0]));
  vst1q_s32(acc + 4, vaddq_s32(vld1q_s32(acc + 4), sums.val[1]));
}

/* A 2 x 4 block's sums: sums.val[p] lane j is pixel p, channel j. */
typedef int32x4x2_t qk_sums_2x4_t;

/* bias[0..3] + the 2 x 4 dot products of x0, x1 with the four rows from w0 (len bytes
 * each, consecutive). */
QK_INLINE qk_sums_2x4_t qk_sums_2x4(const int8_t *x0, const int8_t *x1, const int8_t *w0,
                                    int32_t len, const int32_t *bias) {
  const int32x4_t b = vld1q_s32(bias);
  int32x4x2_t sums = qk_neon_dot_2x4(x0, x1, w0, len, 4, len);
  sums.val[0] = vaddq_s32(sums.val[0], b);
  sums.val[1] = vaddq_s32(sums.val[1], b);
  return sums;
}

/* Requantizes a full 2 x 4 block of sums (bias included) and stores its bytes to
 * out0 + o and, unless NULL, out1 + o. */
QK_INLINE void qk_store_sums_2x4(qk_sums_2x4_t acc, const qanas_requant_t *rq, int32_t o,
                                 int8_t *out0, int8_t *out1) {
  const int32x4_t m = vld1q_s32(rq->multiplier + o), s = vld1q_s32(rq->shift + o);
  const int32_t zp = rq->output_zero_point, lo = rq->qmin, hi = rq->qmax;
  const int32x4_t q0 = qk_neon_requantize(acc.val[0], m, s, zp, lo, hi);
  const int32x4_t q1 = qk_neon_requantize(acc.val[1], m, s, zp, lo, hi);
  const int8x8_t b = vmovn_s16(vcombine_s16(vmovn_s32(q0), vmovn_s32(q1)));
  vst1_lane_s32((int32_t *)(void *)(out0 + o), vreinterpret_s32_s8(b), 0);
  if (out1 != 0) {
    vst1_lane_s32((int32_t *)(void *)(out1 + o), vreinterpret_s32_s8(b), 1);
  }
}

#elif defined(QK_ISA_AVX2)
/* Lane sums of eight vectors a[0..7] as one vector (a 3-level VPHADDD tree, then the two
 * 128-bit halves added): lane j is the sum of a[j]'s eight lanes. */
QK_INLINE __m256i qk_avx2_sum8(const __m256i *a) {
  const __m256i lo = _mm256_hadd_epi32(_mm256_hadd_epi32(a[0], a[1]),
                                       _mm256_hadd_epi32(a[2], a[3]));
  const __m256i hi = _mm256_hadd_epi32(_mm256_hadd_epi32(a[4], a[5]),
                                       _mm256_hadd_epi32(a[6], a[7]));
  return _mm256_add_epi32(_mm256_permute2x128_si256(lo, hi, 0x20),
                          _mm256_permute2x128_si256(lo, hi, 0x31));
}

/* 16 (or, from an 8-byte load, 8 then 8 zero) int8 values as int16 lanes. */
#define QK_AVX2_LOAD16(p) _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(p)))
#define QK_AVX2_LOAD8(p) _mm256_cvtepi8_epi16(_mm_loadl_epi64((const __m128i *)(p)))
/* One step: x0, x1 against the four rows at offset i (LOAD: 16 or 8 bytes). */
#define QK_AVX2_STEP(LOAD, i)                                            \
  do {                                                                   \
    const __m256i vx0 = LOAD(x0 + (i)), vx1 = LOAD(x1 + (i));            \
    __m256i vw = LOAD(w0 + (i));                                         \
    a00 = _mm256_add_epi32(a00, _mm256_madd_epi16(vx0, vw));             \
    a10 = _mm256_add_epi32(a10, _mm256_madd_epi16(vx1, vw));             \
    vw = LOAD(w1 + (i));                                                 \
    a01 = _mm256_add_epi32(a01, _mm256_madd_epi16(vx0, vw));             \
    a11 = _mm256_add_epi32(a11, _mm256_madd_epi16(vx1, vw));             \
    vw = LOAD(w2 + (i));                                                 \
    a02 = _mm256_add_epi32(a02, _mm256_madd_epi16(vx0, vw));             \
    a12 = _mm256_add_epi32(a12, _mm256_madd_epi16(vx1, vw));             \
    vw = LOAD(w3 + (i));                                                 \
    a03 = _mm256_add_epi32(a03, _mm256_madd_epi16(vx0, vw));             \
    a13 = _mm256_add_epi32(a13, _mm256_madd_epi16(vx1, vw));             \
  } while (0)

/* The 2 pixels x 4 rows dot products of x0, x1 with w0 + j * w_stride (j < 4; rows past
 * `rows` repeat the last) over len bytes, as lanes (p0: rows 0..3, p1: rows 0..3).
 * int8 is widened to int16 (VPMOVSXBW) and VPMADDWD adds adjacent exact products into
 * int32 lanes; 16 bytes per step, then 8, then len % 8 in scalar code. The eight
 * accumulators are named, not an array: GCC kept an array in memory. */
QK_INLINE __m256i qk_avx2_dot_2x4(const int8_t *x0, const int8_t *x1, const int8_t *w0,
                                  int32_t w_stride, int32_t rows, int32_t len) {
  const int8_t *w1 = rows > 1 ? w0 + w_stride : w0;
  const int8_t *w2 = rows > 2 ? w1 + w_stride : w1;
  const int8_t *w3 = rows > 3 ? w2 + w_stride : w2;
  __m256i a00 = _mm256_setzero_si256(), a01 = a00, a02 = a00, a03 = a00;
  __m256i a10 = a00, a11 = a00, a12 = a00, a13 = a00;
  int32_t i = 0;
  for (; i + 16 <= len; i += 16) {
    QK_AVX2_STEP(QK_AVX2_LOAD16, i);
  }
  if (i + 8 <= len) {
    QK_AVX2_STEP(QK_AVX2_LOAD8, i);
    i += 8;
  }
  const __m256i a[8] = {a00, a01, a02, a03, a10, a11, a12, a13};
  __m256i sums = qk_avx2_sum8(a);
  if (__builtin_expect(i < len, 0)) {
    const int8_t *const w[4] = {w0, w1, w2, w3};
    int32_t rest[8];
    qk_dot_tail_2x4(x0, x1, w, i, len, rest);
    sums = _mm256_add_epi32(sums, _mm256_loadu_si256((const __m256i *)rest));
  }
  return sums;
}
#undef QK_AVX2_STEP
#undef QK_AVX2_LOAD16
#undef QK_AVX2_LOAD8

static QK_NOINLINE void qk_dot_block(const int8_t *x0, const int8_t *x1, const int8_t *w0,
                                      int32_t w_stride, int32_t rows, int32_t len,
                                      int32_t *acc) {
  const __m256i sums = qk_avx2_dot_2x4(x0, x1, w0, w_stride, rows, len);
  _mm256_storeu_si256((__m256i *)acc,
                      _mm256_add_epi32(_mm256_loadu_si256((const __m256i *)acc), sums));
}

/* A 2 x 4 block's sums: lanes 0..3 pixel 0's channels, 4..7 pixel 1's. */
typedef __m256i qk_sums_2x4_t;

/* bias[0..3] + the 2 x 4 dot products of x0, x1 with the four rows from w0 (len bytes
 * each, consecutive). */
QK_INLINE qk_sums_2x4_t qk_sums_2x4(const int8_t *x0, const int8_t *x1, const int8_t *w0,
                                    int32_t len, const int32_t *bias) {
  const __m256i b = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)bias));
  return _mm256_add_epi32(qk_avx2_dot_2x4(x0, x1, w0, len, 4, len), b);
}

/* Requantizes a full 2 x 4 block of sums (bias included; lanes p0: o .. o + 3, p1: the
 * same channels) and stores its bytes to out0 + o and, unless NULL, out1 + o. */
QK_INLINE void qk_store_sums_2x4(qk_sums_2x4_t acc, const qanas_requant_t *rq, int32_t o,
                                 int8_t *out0, int8_t *out1) {
  const __m256i m = _mm256_broadcastsi128_si256(
      _mm_loadu_si128((const __m128i *)(rq->multiplier + o)));
  const __m256i s = _mm256_broadcastsi128_si256(
      _mm_loadu_si128((const __m128i *)(rq->shift + o)));
  const __m256i q = qk_avx2_requantize(acc, m, s, rq->output_zero_point, rq->qmin, rq->qmax);
  const __m128i q16 = _mm_packs_epi32(_mm256_castsi256_si128(q),
                                      _mm256_extracti128_si256(q, 1));
  const __m128i q8 = _mm_packs_epi16(q16, q16);
  const int32_t b0 = _mm_cvtsi128_si32(q8), b1 = _mm_extract_epi32(q8, 1);
  __builtin_memcpy(out0 + o, &b0, sizeof(b0));
  if (out1 != 0) {
    __builtin_memcpy(out1 + o, &b1, sizeof(b1));
  }
}

#else /* portable C */
static QK_NOINLINE void qk_dot_block(const int8_t *x0, const int8_t *x1, const int8_t *w0,
                                      int32_t w_stride, int32_t rows, int32_t len,
                                      int32_t *acc) {
  const int8_t *w1 = rows > 1 ? w0 + w_stride : w0;
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

QK_INLINE void qk_store_block(const int32_t *acc, const qanas_requant_t *rq, int32_t o,
                              int32_t rows, int32_t vector_rq, int8_t *out0, int8_t *out1) {
#if defined(QK_ISA_MVE)
  if (vector_rq) {
    const mve_pred16_t p = vctp32q((uint32_t)rows);
    const int32x4_t m = vldrwq_z_s32(rq->multiplier + o, p);
    const int32x4_t s = vldrwq_z_s32(rq->shift + o, p);
    (void)out1; /* one pixel per block */
    int32x4_t a = vdupq_n_s32(acc[0]); /* from core registers, not through memory */
    a = vsetq_lane_s32(acc[1], a, 1);
    a = vsetq_lane_s32(acc[2], a, 2);
    a = vsetq_lane_s32(acc[3], a, 3);
    vstrbq_p_s32(out0 + o, qk_mve_requantize(a, m, s, rq->output_zero_point, rq->qmin,
                                              rq->qmax), p);
    return;
  }
#elif defined(QK_ISA_AVX2)
  if (vector_rq && rows == QK_BLOCK_CH) {
    qk_store_sums_2x4(_mm256_loadu_si256((const __m256i *)acc), rq, o, out0, out1);
    return;
  }
#elif defined(QK_ISA_NEON)
  if (vector_rq && rows == QK_BLOCK_CH) {
    int32x4x2_t sums;
    sums.val[0] = vld1q_s32(acc);
    sums.val[1] = vld1q_s32(acc + QK_BLOCK_CH);
    qk_store_sums_2x4(sums, rq, o, out0, out1);
    return;
  }
#else
  (void)vector_rq;
#endif
  const int32_t zp = rq->output_zero_point, lo = rq->qmin, hi = rq->qmax;
#if defined(__GNUC__)
#pragma GCC unroll 4
#endif
  for (int32_t j = 0; j < QK_BLOCK_CH; ++j) {
    if (j >= rows) {
      break;
    }
    const int32_t m = rq->multiplier[o + j], s = rq->shift[o + j];
    out0[o + j] = (int8_t)qk_requantize(acc[j], m, s, zp, lo, hi);
    if (out1 != 0) {
      out1[o + j] = (int8_t)qk_requantize(acc[QK_BLOCK_CH + j], m, s, zp, lo, hi);
    }
  }
}

#if defined(QK_ISA_MVE)
/* Rows and bytes of one interleaved Helium weight block (compiler/kernels/packing.py:
 * pack_conv(isa="mve")): rows 8b .. 8b + 7, 16 bytes each per 16-byte column chunk. */
#define QK_MVE_ROWS 8
#define QK_MVE_CHUNK 16

/* Raw sums acc[o] = sum_i x[i] * W[o][i] for `rows` rows (rounded up to 8; acc has room)
 * of interleaved weights w (row length k): eight VMLADAV accumulators share each 16-byte
 * input vector, one weight pointer walks the block. Only the sums, so that the loop's
 * few live values stay in registers; the requantization runs after, over all rows. */
static QK_NOINLINE void qk_mve_gemm_sums(const int8_t *x, const int8_t *w, int32_t k,
                                         int32_t rows, int32_t *acc) {
  const int32_t chunks = k / QK_MVE_CHUNK, rest = k % QK_MVE_CHUNK;
  for (int32_t left = rows; left > 0; left -= QK_MVE_ROWS, acc += QK_MVE_ROWS) {
    const int8_t *xp = x;
    /* VMLADAVA needs an even accumulator register: eight accumulators take all eight
     * (lr included), which GCC 12 does not find alone (it spilled and shuffled them,
     * 26 instructions per 128 MACs); written out, the loop is 9 loads, 8 VMLADAV and 3
     * instructions of loop. */
    QK_MVE_EVEN_ACCUMULATORS(a0, a1, a2, a3, a4, a5, a6, a7);
    if (chunks > 0) {
      int32_t n = chunks;
      __asm__ volatile(
          "1:\n\t"
          "vldrb.8 q0, [%[x]], #16\n\t"
          "vldrb.8 q1, [%[w]]\n\t"
          "vldrb.8 q2, [%[w], #16]\n\t"
          "vmladava.s8 %[a0], q0, q1\n\t"
          "vldrb.8 q3, [%[w], #32]\n\t"
          "vmladava.s8 %[a1], q0, q2\n\t"
          "vldrb.8 q1, [%[w], #48]\n\t"
          "vmladava.s8 %[a2], q0, q3\n\t"
          "vldrb.8 q2, [%[w], #64]\n\t"
          "vmladava.s8 %[a3], q0, q1\n\t"
          "vldrb.8 q3, [%[w], #80]\n\t"
          "vmladava.s8 %[a4], q0, q2\n\t"
          "vldrb.8 q1, [%[w], #96]\n\t"
          "vmladava.s8 %[a5], q0, q3\n\t"
          "vldrb.8 q2, [%[w], #112]\n\t"
          "vmladava.s8 %[a6], q0, q1\n\t"
          "adds %[w], #128\n\t"
          "vmladava.s8 %[a7], q0, q2\n\t"
          "subs %[n], #1\n\t"
          "bne 1b\n\t"
          : [x] "+r"(xp), [w] "+r"(w), [n] "+r"(n), [a0] "+r"(a0), [a1] "+r"(a1),
            [a2] "+r"(a2), [a3] "+r"(a3), [a4] "+r"(a4), [a5] "+r"(a5), [a6] "+r"(a6),
            [a7] "+r"(a7)
          :
          : "q0", "q1", "q2", "q3", "cc", "memory");
    }
    if (rest != 0) { /* the input's partial last vector is predicated (weights are padded) */
      const int8x16_t vx = vldrbq_z_s8(xp, vctp8q((uint32_t)rest));
      a0 = vmladavaq_s8(a0, vx, vldrbq_s8(w));
      a1 = vmladavaq_s8(a1, vx, vldrbq_s8(w + 16));
      a2 = vmladavaq_s8(a2, vx, vldrbq_s8(w + 32));
      a3 = vmladavaq_s8(a3, vx, vldrbq_s8(w + 48));
      a4 = vmladavaq_s8(a4, vx, vldrbq_s8(w + 64));
      a5 = vmladavaq_s8(a5, vx, vldrbq_s8(w + 80));
      a6 = vmladavaq_s8(a6, vx, vldrbq_s8(w + 96));
      a7 = vmladavaq_s8(a7, vx, vldrbq_s8(w + 112));
      w += QK_MVE_ROWS * QK_MVE_CHUNK;
    }
    acc[0] = a0, acc[1] = a1, acc[2] = a2, acc[3] = a3;
    acc[4] = a4, acc[5] = a5, acc[6] = a6, acc[7] = a7;
  }
}

/* Output rows per pass of qk_mve_gemm_pixel (its int32 sums live on the stack). */
#define QK_MVE_PASS_ROWS 256

/* One output pixel of a GEMM: out[o] = requant(bias[o] + sum_i x[i] * W[o][i]) for the
 * `rows` rows of one group's interleaved weights w (row length k); channel o of the
 * group is channel o_first + o of bias, rq and out. */
static void qk_mve_gemm_pixel(const int8_t *x, const int8_t *w, int32_t k, int32_t rows,
                              const int32_t *bias, const qanas_requant_t *rq,
                              int32_t o_first, int32_t vector_rq, int8_t *out) {
  const int32_t zp = rq->output_zero_point, lo = rq->qmin, hi = rq->qmax;
  const int32_t kp = (k + QK_MVE_CHUNK - 1) & ~(QK_MVE_CHUNK - 1);
  int32_t sums[QK_MVE_PASS_ROWS] __attribute__((aligned(16)));
  for (int32_t o0 = 0; o0 < rows; o0 += QK_MVE_PASS_ROWS) {
    const int32_t n = rows - o0 < QK_MVE_PASS_ROWS ? rows - o0 : QK_MVE_PASS_ROWS;
    qk_mve_gemm_sums(x, w + o0 * kp, k, n, sums);
    const int32_t o = o_first + o0;
    const int32_t *b = bias + o, *m = rq->multiplier + o, *sh = rq->shift + o;
    int8_t *dst = out + o;
    int32_t j = 0;
    if (vector_rq) {
      for (; j + 4 <= n; j += 4) {
        const int32x4_t a = vaddq_s32(vldrwq_s32(sums + j), vldrwq_s32(b + j));
        vstrbq_s32(dst + j, qk_mve_requantize(a, vldrwq_s32(m + j), vldrwq_s32(sh + j), zp,
                                               lo, hi));
      }
    }
    for (; j < n; ++j) {
      dst[j] = (int8_t)qk_requantize(sums[j] + b[j], m[j], sh[j], zp, lo, hi);
    }
  }
}

/* Weight W[o][i] of one group's interleaved matrix (row length k), for the slow path. */
QK_INLINE int32_t qk_mve_weight(const int8_t *w, int32_t k, int32_t o, int32_t i) {
  const int32_t kp = (k + QK_MVE_CHUNK - 1) & ~(QK_MVE_CHUNK - 1);
  return w[(o / QK_MVE_ROWS) * QK_MVE_ROWS * kp + (i / QK_MVE_CHUNK) * QK_MVE_ROWS *
           QK_MVE_CHUNK + (o % QK_MVE_ROWS) * QK_MVE_CHUNK + i % QK_MVE_CHUNK];
}
#endif

#endif /* QANAS_KERNELS_BLOCK_H_ */
