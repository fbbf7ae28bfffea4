/* Pointwise and k x k convolutions with int4 weights packed two per byte
 * (qanas_kernels_s4.h), as blocks of 2 pixels x 2 output channels (DSP: 4 pixels x 1
 * channel against inputs split once per pixel, for windows up to 288 inputs; Helium:
 * 2 pixels x 4 channels). The nibbles are unpacked in registers, never into a buffer:
 * Helium shifts and masks 32 of them into two vectors of 16-times weights for VMLADAV;
 * DSP (Cortex-M4/M7/M33, and Helium cores for rows longer than QANAS_S4_PATCH_MAX) masks
 * and SXTB16s them into halfword pairs for SMLAD; AVX2 widens 32 of them to int16 lanes
 * for VPMADDWD; the portable path sign-extends one at a time. */
#include "qanas_kernels_s4.h"

#include "qk_internal.h"

#if defined(QK_ISA_MVE) && QK_FULL_ASM
#define QK_S4_MVE 1
#endif
#if !defined(QANAS_KERNELS_PORTABLE) && defined(__ARM_FEATURE_DSP) && !defined(__aarch64__)
#define QK_S4_DSP 1
#include <arm_acle.h>
#elif !defined(QANAS_KERNELS_PORTABLE) && defined(__AVX2__)
#define QK_S4_AVX2 1
#include <immintrin.h>
#endif

/* Weight t (0-based) of a packed row: byte t / 8 * 4 + t % 4, high nibble when t % 8 >= 4. */
QK_INLINE int32_t qk_s4_weight(const uint8_t *row, int32_t t) {
  const uint32_t byte = row[t / 8 * 4 + t % 4];
  const uint32_t nibble = (t % 8 >= 4 ? byte >> 4 : byte) & 0xFu;
  return (int32_t)(nibble ^ 8u) - 8;
}

#if defined(QK_S4_DSP)
/* SXTB16 of a word rotated right by 8: halfwords (b1, b3) (GCC 12 has no __sxtb16_ror). */
QK_INLINE int32_t qk_s4_sxtb16_ror8(int32_t v) {
  int32_t r;
  __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
  return r;
}

/* One packed group (8 weights of rows w0 and w1 against 8 inputs of pixels x0 and x1),
 * pointers advanced: per half (low nibbles against inputs 0..3, high nibbles against
 * 4..7) the two weight words are loaded, masked to nibble-times-16 bytes and split by
 * SXTB16 into halfword pairs; each pixel's input word is split the same way and four
 * SMLADs add its products. The weight words are loaded again for the high half rather
 * than kept: four pointers, four sums and six split words take all 14 registers (the
 * same budget as the int8 kernel's qk_dsp_dot_2x2). 46 instructions per 32 MACs. */
#define QK_S4_PIXELS                               \
  "ldr %[xe], [%[x0]], #4\n\t"                   \
  "sxtb16 %[xo], %[xe], ror #8\n\t"              \
  "sxtb16 %[xe], %[xe]\n\t"                      \
  "smlad %[s00], %[xe], %[pa], %[s00]\n\t"       \
  "smlad %[s01], %[xe], %[pb], %[s01]\n\t"       \
  "smlad %[s00], %[xo], %[qa], %[s00]\n\t"       \
  "smlad %[s01], %[xo], %[qb], %[s01]\n\t"       \
  "ldr %[xe], [%[x1]], #4\n\t"                   \
  "sxtb16 %[xo], %[xe], ror #8\n\t"              \
  "sxtb16 %[xe], %[xe]\n\t"                      \
  "smlad %[s10], %[xe], %[pa], %[s10]\n\t"       \
  "smlad %[s11], %[xe], %[pb], %[s11]\n\t"       \
  "smlad %[s10], %[xo], %[qa], %[s10]\n\t"       \
  "smlad %[s11], %[xo], %[qb], %[s11]\n\t"
#define QK_S4_SPLIT_WEIGHTS                        \
  "sxtb16 %[qa], %[pa], ror #8\n\t"              \
  "sxtb16 %[pa], %[pa]\n\t"                      \
  "sxtb16 %[qb], %[pb], ror #8\n\t"              \
  "sxtb16 %[pb], %[pb]\n\t"
#define QK_S4_GROUP                                \
  "ldr %[pa], [%[w0]]\n\t"                       \
  "ldr %[pb], [%[w1]]\n\t"                       \
  "lsl %[pa], %[pa], #4\n\t"                     \
  "lsl %[pb], %[pb], #4\n\t"                     \
  "and %[pa], %[pa], #0xF0F0F0F0\n\t"            \
  "and %[pb], %[pb], #0xF0F0F0F0\n\t"            \
  QK_S4_SPLIT_WEIGHTS QK_S4_PIXELS                 \
  "ldr %[pa], [%[w0]], #4\n\t"                   \
  "ldr %[pb], [%[w1]], #4\n\t"                   \
  "and %[pa], %[pa], #0xF0F0F0F0\n\t"            \
  "and %[pb], %[pb], #0xF0F0F0F0\n\t"            \
  QK_S4_SPLIT_WEIGHTS QK_S4_PIXELS
#define QK_S4_OPERANDS                                                                    \
  : [x0] "+r"(x0), [x1] "+r"(x1), [w0] "+r"(w0), [w1] "+r"(w1), [s00] "+r"(s00),          \
    [s01] "+r"(s01), [s10] "+r"(s10), [s11] "+r"(s11), [pa] "=&r"(pa), [qa] "=&r"(qa),    \
    [pb] "=&r"(pb), [qb] "=&r"(qb), [xe] "=&r"(xe), [xo] "=&r"(xo)

#if QK_FULL_ASM
/* acc[p * 2 + j] += sum over `depth` / 8 whole groups (see QK_S4_GROUP); returns the
 * number of weights done. Two groups per pass (the end pointer lives on the stack). */
static int32_t qk_s4_dsp_groups(const int8_t *x0, const int8_t *x1, const uint8_t *w0,
                                const uint8_t *w1, int32_t depth, int32_t *acc) {
  int32_t s00 = 0, s01 = 0, s10 = 0, s11 = 0; /* sums of 16 x products */
  int32_t pa, qa, pb, qb, xe, xo;
  const int32_t pairs = depth & ~15, done = depth & ~7;
  if (pairs != 0) {
    const int8_t *const x0_end = x0 + pairs;
    __asm__ volatile("1:\n\t" QK_S4_GROUP QK_S4_GROUP
                     "ldr %[pa], %[end]\n\t"
                     "cmp %[x0], %[pa]\n\t"
                     "bne 1b\n\t"
                     QK_S4_OPERANDS
                     : [end] "m"(x0_end)
                     : "cc");
  }
  if (done != pairs) {
    __asm__ volatile(QK_S4_GROUP QK_S4_OPERANDS : : "cc");
  }
  acc[0] += s00 >> 4;
  acc[1] += s01 >> 4;
  acc[2] += s10 >> 4;
  acc[3] += s11 >> 4;
  return done;
}
#endif

/* Two split input words with one LDRD (GCC 12 splits a 64-bit read into two LDRs). */
typedef int64_t __attribute__((may_alias)) qk_s4_pair_t; /* reads int32 words */
QK_INLINE void qk_s4_ldrd(const int32_t *p, int32_t *even, int32_t *odd) {
  __asm__("ldrd %0, %1, %2" : "=r"(*even), "=r"(*odd) : "m"(*(const qk_s4_pair_t *)p));
}

/* Pixels per quad block, and the longest window it takes (its split inputs, xq, are
 * 4 x 2 bytes per input on the stack: 2.3 KB). Longer windows run pixel pairs. */
#define QK_S4_QUAD 4
#define QK_S4_QUAD_MAX 288

/* xq[8 i + 2 p] and xq[8 i + 2 p + 1]: the SXTB16 pairs (b0, b2) and (b1, b3) of input
 * word i of pixel p, for the first `depth` & ~7 inputs of each pixel's window (`runs`
 * runs of `run` inputs, `x_step` bytes apart, from px[p]). Split once per pixel, they
 * serve every output channel. */
static void qk_s4_dsp_split_quad(const int8_t *const px[QK_S4_QUAD], int32_t x_step,
                                 int32_t runs, int32_t run, int32_t depth, int32_t *xq) {
  const int32_t words = (depth & ~7) / 4, run_words = run / 4;
  for (int32_t i = 0; i < words; ++i, xq += 2 * QK_S4_QUAD) {
    const int32_t offset = (i / run_words) * x_step + (i % run_words) * 4;
    for (int32_t p = 0; p < QK_S4_QUAD; ++p) {
      int32_t v;
      __builtin_memcpy(&v, px[p] + (runs > 1 ? offset : 4 * i), sizeof(v));
      xq[2 * p] = __sxtb16(v);
      xq[2 * p + 1] = qk_s4_sxtb16_ror8(v);
    }
  }
}

/* acc[p] += sum over the whole groups of one packed row `w` against the split inputs of
 * the quad: per group one weight word, masked and split into four pairs (8 instructions),
 * then 16 SMLADs against 8 LDRDs of split inputs: 32 instructions per 32 MACs. */
static QK_NOINLINE void qk_s4_dsp_quad_row(const int32_t *xq, const uint8_t *w,
                                           int32_t groups, int32_t *acc) {
  int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0; /* sums of 16 x products */
  for (int32_t g = 0; g < groups; ++g, xq += 4 * QK_S4_QUAD) {
    uint32_t word;
    __builtin_memcpy(&word, w + 4 * g, sizeof(word));
    const int32_t lo = (int32_t)((word << 4) & 0xF0F0F0F0u);
    const int32_t hi = (int32_t)(word & 0xF0F0F0F0u);
    const int32_t l0 = __sxtb16(lo), l1 = qk_s4_sxtb16_ror8(lo);
    const int32_t h0 = __sxtb16(hi), h1 = qk_s4_sxtb16_ror8(hi);
    int32_t e, o;
    qk_s4_ldrd(xq, &e, &o), a0 = __smlad(l0, e, a0), a0 = __smlad(l1, o, a0);
    qk_s4_ldrd(xq + 2, &e, &o), a1 = __smlad(l0, e, a1), a1 = __smlad(l1, o, a1);
    qk_s4_ldrd(xq + 4, &e, &o), a2 = __smlad(l0, e, a2), a2 = __smlad(l1, o, a2);
    qk_s4_ldrd(xq + 6, &e, &o), a3 = __smlad(l0, e, a3), a3 = __smlad(l1, o, a3);
    qk_s4_ldrd(xq + 8, &e, &o), a0 = __smlad(h0, e, a0), a0 = __smlad(h1, o, a0);
    qk_s4_ldrd(xq + 10, &e, &o), a1 = __smlad(h0, e, a1), a1 = __smlad(h1, o, a1);
    qk_s4_ldrd(xq + 12, &e, &o), a2 = __smlad(h0, e, a2), a2 = __smlad(h1, o, a2);
    qk_s4_ldrd(xq + 14, &e, &o), a3 = __smlad(h0, e, a3), a3 = __smlad(h1, o, a3);
  }
  acc[0] += a0 >> 4;
  acc[1] += a1 >> 4;
  acc[2] += a2 >> 4;
  acc[3] += a3 >> 4;
}

/* Output channels o0 .. o0 + count of 4 pixels (windows as in qk_s4_channels, from
 * px[p], depth <= QK_S4_QUAD_MAX) into out[p]. */
static QK_NOINLINE void qk_s4_dsp_quad(const int8_t *const px[QK_S4_QUAD], int32_t x_step,
                                       int32_t runs, int32_t run, int32_t depth,
                                       const uint8_t *rows, int32_t row_bytes, int32_t o0,
                                       int32_t count, const int32_t *bias,
                                       const qanas_requant_t *rq,
                                       int8_t *const out[QK_S4_QUAD]) {
  int32_t xq[2 * QK_S4_QUAD_MAX];
  const int32_t whole = depth & ~7;
  qk_s4_dsp_split_quad(px, x_step, runs, run, depth, xq);
  for (int32_t j = 0; j < count; ++j) {
    const int32_t o = o0 + j;
    const uint8_t *w = rows + j * row_bytes;
    int32_t acc[QK_S4_QUAD] = {bias[o], bias[o], bias[o], bias[o]};
    qk_s4_dsp_quad_row(xq, w, whole / QANAS_S4_GROUP, acc);
    for (int32_t t = whole; t < depth; ++t) { /* one window (runs == 1): contiguous */
      const int32_t wt = qk_s4_weight(w, t);
      for (int32_t p = 0; p < QK_S4_QUAD; ++p) {
        acc[p] += px[p][t] * wt;
      }
    }
    for (int32_t p = 0; p < QK_S4_QUAD; ++p) {
      out[p][o] = (int8_t)qk_requantize(acc[p], rq->multiplier[o], rq->shift[o],
                                        rq->output_zero_point, rq->qmin, rq->qmax);
    }
  }
}
#endif

#if defined(QK_S4_AVX2)
/* 32 weights of a packed row (16 bytes) as two vectors of 16 int16 in row order. */
QK_INLINE void qk_s4_avx2_unpack32(const uint8_t *row, __m256i *w_lo, __m256i *w_hi) {
  const __m128i packed = _mm_loadu_si128((const __m128i *)row);
  const __m128i mask = _mm_set1_epi8(0x0F), eight = _mm_set1_epi8(8);
  const __m128i lo = _mm_sub_epi8(_mm_xor_si128(_mm_and_si128(packed, mask), eight), eight);
  const __m128i hi = _mm_sub_epi8(
      _mm_xor_si128(_mm_and_si128(_mm_srli_epi16(packed, 4), mask), eight), eight);
  /* per group of 8: low nibbles are w0..w3, high ones w4..w7 */
  *w_lo = _mm256_cvtepi8_epi16(_mm_unpacklo_epi32(lo, hi));
  *w_hi = _mm256_cvtepi8_epi16(_mm_unpackhi_epi32(lo, hi));
}

/* The horizontal sum of eight int32 lanes. */
QK_INLINE int32_t qk_s4_avx2_sum(__m256i v) {
  __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
  s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
  return _mm_cvtsi128_si32(s);
}
#endif

#if defined(QK_S4_MVE)
/* The pair buffer: the inputs of two output pixels (a pointwise pixel or a k x k window
 * each, up to QK_S4_MVE_DEPTH_MAX bytes), interleaved in steps of QK_S4_MVE_STEP bytes:
 * step s holds pixel 0's bytes 32 s .. 32 s + 31, then pixel 1's, and the last step is
 * padded with zeros. One pointer then walks both pixels (the accumulators and the four
 * weight pointers leave one free core register). */
#define QK_S4_MVE_STEP 32
#define QK_S4_MVE_DEPTH_MAX QANAS_S4_PATCH_MAX
/* Output channels per block (eight VMLADAVA accumulators: 2 pixels x 4 channels) and
 * per pass of qk_s4_mve_pixels (its int32 sums live on the stack). */
#define QK_S4_MVE_ROWS 4
#define QK_S4_MVE_PASS 64

/* Bytes t .. t + n of pixel p in the pair buffer = src[0 .. n), or `value` when src is
 * NULL; split where a step ends, 16 bytes per predicated vector copy. */
QK_INLINE void qk_s4_mve_put(int8_t *pair, int32_t p, int32_t t, const int8_t *src,
                             int8_t value, int32_t n) {
  const int8x16_t fill = vdupq_n_s8(value);
  while (n > 0) {
    const int32_t offset = t % QK_S4_MVE_STEP;
    const int32_t len = n < QK_S4_MVE_STEP - offset ? n : QK_S4_MVE_STEP - offset;
    int8_t *dst = pair + (t / QK_S4_MVE_STEP) * 2 * QK_S4_MVE_STEP + p * QK_S4_MVE_STEP +
                  offset;
    for (int32_t i = 0; i < len; i += 16) {
      const mve_pred16_t q = vctp8q((uint32_t)(len - i));
      vstrbq_p_s8(dst + i, src != 0 ? vldrbq_z_s8(src + i, q) : fill, q);
    }
    src = src != 0 ? src + len : 0;
    t += len;
    n -= len;
  }
}

/* Zeros after the `depth` bytes of pixel p, to the end of its last step (their weights
 * are zero; the zeros keep every product defined). */
QK_INLINE void qk_s4_mve_pad(int8_t *pair, int32_t p, int32_t depth) {
  const int32_t end = (depth + QK_S4_MVE_STEP - 1) & ~(QK_S4_MVE_STEP - 1);
  qk_s4_mve_put(pair, p, depth, 0, 0, end - depth);
}

/* Pixel p of the pair buffer = `runs` runs of `run` bytes, `step` bytes apart from x
 * (a pointwise pixel, or an inside window of whole kernel rows), then padded. */
QK_INLINE void qk_s4_mve_put_runs(int8_t *pair, int32_t p, const int8_t *x, int32_t runs,
                                  int32_t run, int32_t step) {
  for (int32_t r = 0; r < runs; ++r) {
    qk_s4_mve_put(pair, p, r * run, x + r * step, 0, run);
  }
  qk_s4_mve_pad(pair, p, runs * run);
}

/* Both pixels' inputs of one step (two VLD2 pairs: words 0, 2, 4, 6 of each pixel meet
 * the low nibbles, words 1, 3, 5, 7 the high ones), then per output channel a (loaded)
 * 16-byte weight vector q5 into 16-times low nibbles (VSHL #4) and high nibbles (VAND
 * 0xF0, the mask in q6), four VMLADAVA: 7 instructions per 64 MACs. */
#define QK_S4_MVE_INPUTS                            \
  "vld20.32 {q0, q1}, [%[x]]\n\t"                  \
  "vld21.32 {q0, q1}, [%[x]]!\n\t"                 \
  "vld20.32 {q2, q3}, [%[x]]\n\t"                  \
  "vld21.32 {q2, q3}, [%[x]]!\n\t"
/* One pixel (the pair buffer's first; the second's half step skipped): */
#define QK_S4_MVE_INPUT_ONE                         \
  "vld20.32 {q0, q1}, [%[x]]\n\t"                  \
  "vld21.32 {q0, q1}, [%[x]]!\n\t"                 \
  "add %[x], %[x], #32\n\t"
#define QK_S4_MVE_CHANNEL_ONE(a0)                   \
  "vshl.i8 q4, q5, #4\n\t"                         \
  "vand q5, q5, q6\n\t"                            \
  "vmladava.s8 %[" a0 "], q0, q4\n\t"              \
  "vmladava.s8 %[" a0 "], q1, q5\n\t"
#define QK_S4_MVE_CHANNEL(a0, a1)                   \
  "vshl.i8 q4, q5, #4\n\t"                         \
  "vand q5, q5, q6\n\t"                            \
  "vmladava.s8 %[" a0 "], q0, q4\n\t"              \
  "vmladava.s8 %[" a0 "], q1, q5\n\t"              \
  "vmladava.s8 %[" a1 "], q2, q4\n\t"              \
  "vmladava.s8 %[" a1 "], q3, q5\n\t"
/* A full step: the weight vectors post-incremented. The last, partial one: loaded under
 * the VCTP predicate (bytes past the row read as zero). */
#define QK_S4_MVE_FULL(w) "vldrb.u8 q5, [%[" w "]], #16\n\t"
#define QK_S4_MVE_PART(w) "vpst\n\tvldrbt.u8 q5, [%[" w "]]\n\t"
#define QK_S4_MVE_BLOCK(LOAD)                                                           \
  QK_S4_MVE_INPUTS                                                                      \
  LOAD("w0") QK_S4_MVE_CHANNEL("a00", "a10") LOAD("w1") QK_S4_MVE_CHANNEL("a01", "a11")  \
  LOAD("w2") QK_S4_MVE_CHANNEL("a02", "a12") LOAD("w3") QK_S4_MVE_CHANNEL("a03", "a13")
#define QK_S4_MVE_BLOCK_ONE(LOAD)                                                       \
  QK_S4_MVE_INPUT_ONE                                                                   \
  LOAD("w0") QK_S4_MVE_CHANNEL_ONE("a00") LOAD("w1") QK_S4_MVE_CHANNEL_ONE("a01")        \
  LOAD("w2") QK_S4_MVE_CHANNEL_ONE("a02") LOAD("w3") QK_S4_MVE_CHANNEL_ONE("a03")
#define QK_S4_MVE_OPERANDS                                                                \
  [x] "+r"(x), [w0] "+r"(w0), [w1] "+r"(w1), [w2] "+r"(w2), [w3] "+r"(w3), [a00] "+r"(a00), \
      [a01] "+r"(a01), [a02] "+r"(a02), [a03] "+r"(a03), [a10] "+r"(a10), [a11] "+r"(a11),  \
      [a12] "+r"(a12), [a13] "+r"(a13)

/* sums0[j] and sums1[j] = 16 x the dot products of the pair buffer's two pixels with
 * packed rows j < count of `rows` (count rounded up to QK_S4_MVE_ROWS: the extra rows
 * repeat the last one); `two` == 0: the first pixel only (sums1 gets zeros). Per block of
 * 4 rows one pass over the steps, one step written out (the accumulators take the eight
 * even registers, QK_MVE_EVEN_ACCUMULATORS; x and four weight pointers five odd ones)
 * and the loop test in C, which at -O2 keeps the end in the sixth: 34 instructions per
 * 256 MACs (one pixel: 25 per 128), then the row's partial step if any, its VCTP
 * predicate an operand. 13 core registers: with the loop test inside the asm (14),
 * GCC 12 found no allocation at -O1 and -Og. */
static QK_NOINLINE void qk_s4_mve_sums(const int8_t *pair, const uint8_t *rows,
                                       int32_t row_bytes, int32_t count, int32_t two,
                                       int32_t *sums0, int32_t *sums1) {
  const int32_t steps = row_bytes / (QK_S4_MVE_STEP / 2);
  const uint32_t rest = (uint32_t)(row_bytes % (QK_S4_MVE_STEP / 2));
  const int8_t *const end = pair + steps * 2 * QK_S4_MVE_STEP;
  for (int32_t j = 0; j < count; j += QK_S4_MVE_ROWS) {
    const uint8_t *w0 = rows + j * row_bytes;
    const uint8_t *w1 = j + 1 < count ? w0 + row_bytes : w0;
    const uint8_t *w2 = j + 2 < count ? w1 + row_bytes : w1;
    const uint8_t *w3 = j + 3 < count ? w2 + row_bytes : w2;
    const int8_t *x = pair;
    QK_MVE_EVEN_ACCUMULATORS(a00, a01, a02, a03, a10, a11, a12, a13);
#define QK_S4_MVE_STEP_ASM(BLOCK)                                                       \
  __asm__ volatile("vmov.i8 q6, #0xf0\n\t" BLOCK(QK_S4_MVE_FULL)                        \
                   : QK_S4_MVE_OPERANDS                                                   \
                   :                                                                      \
                   : "q0", "q1", "q2", "q3", "q4", "q5", "q6", "memory")
#define QK_S4_MVE_REST_ASM(BLOCK)                                                       \
  __asm__ volatile("vmov.i8 q6, #0xf0\n\t" BLOCK(QK_S4_MVE_PART)                        \
                   : QK_S4_MVE_OPERANDS                                                   \
                   : [p] "Up"(vctp8q(rest))                                               \
                   : "q0", "q1", "q2", "q3", "q4", "q5", "q6", "memory")
    if (steps > 0 && two) {
      do {
        QK_S4_MVE_STEP_ASM(QK_S4_MVE_BLOCK);
      } while (x != end);
    } else if (steps > 0) {
      do {
        QK_S4_MVE_STEP_ASM(QK_S4_MVE_BLOCK_ONE);
      } while (x != end);
    }
    if (rest != 0 && two) {
      QK_S4_MVE_REST_ASM(QK_S4_MVE_BLOCK);
    } else if (rest != 0) {
      QK_S4_MVE_REST_ASM(QK_S4_MVE_BLOCK_ONE);
    }
#undef QK_S4_MVE_STEP_ASM
#undef QK_S4_MVE_REST_ASM
    /* four STRDs (GCC 12 went through the stack and a vector copy: 12 instructions) */
    __asm__ volatile("strd %[a00], %[a01], [%[s0]]\n\t"
                     "strd %[a02], %[a03], [%[s0], #8]\n\t"
                     "strd %[a10], %[a11], [%[s1]]\n\t"
                     "strd %[a12], %[a13], [%[s1], #8]\n\t"
                     :
                     : [s0] "r"(sums0 + j), [s1] "r"(sums1 + j), [a00] "r"(a00),
                       [a01] "r"(a01), [a02] "r"(a02), [a03] "r"(a03), [a10] "r"(a10),
                       [a11] "r"(a11), [a12] "r"(a12), [a13] "r"(a13)
                     : "memory");
  }
}

/* The sums of qk_s4_mve_sums for the first `count` rows (a multiple of QK_S4_MVE_ROWS,
 * not the last row of `rows`) when a row is one step (row_bytes <= 16, up to 32
 * weights): the inputs stay in registers and one asm loop runs every block, each
 * accumulator set by VMLADAV and added to once. A row's 16-byte load reads into the next
 * rows, whose weights meet the zeros that pad the pair buffer's step; the caller leaves
 * enough rows to qk_s4_mve_sums (predicated) that no load passes its last row. 38
 * instructions per block of 8 sums. */
static QK_NOINLINE void qk_s4_mve_short_rows(const int8_t *pair, const uint8_t *rows,
                                             int32_t row_bytes, int32_t count,
                                             int32_t *sums0, int32_t *sums1) {
  const uint8_t *w = rows;
  const uint8_t *const end = rows + count * row_bytes;
  QK_MVE_EVEN_ACCUMULATORS(a00, a01, a02, a03, a10, a11, a12, a13);
#define QK_S4_MVE_SHORT_CHANNEL(a0, a1)             \
  "vldrb.u8 q5, [%[w]]\n\t"                        \
  "add %[w], %[w], %[rb]\n\t"                      \
  "vshl.i8 q4, q5, #4\n\t"                         \
  "vand q5, q5, q6\n\t"                            \
  "vmladav.s8 %[" a0 "], q0, q4\n\t"               \
  "vmladava.s8 %[" a0 "], q1, q5\n\t"              \
  "vmladav.s8 %[" a1 "], q2, q4\n\t"               \
  "vmladava.s8 %[" a1 "], q3, q5\n\t"
  __asm__ volatile("vmov.i8 q6, #0xf0\n\t" QK_S4_MVE_INPUTS
                   "1:\n\t" QK_S4_MVE_SHORT_CHANNEL("a00", "a10")
                   QK_S4_MVE_SHORT_CHANNEL("a01", "a11") QK_S4_MVE_SHORT_CHANNEL("a02", "a12")
                   QK_S4_MVE_SHORT_CHANNEL("a03", "a13")
                   "strd %[a00], %[a01], [%[s0]], #8\n\t"
                   "strd %[a02], %[a03], [%[s0]], #8\n\t"
                   "strd %[a10], %[a11], [%[s1]], #8\n\t"
                   "strd %[a12], %[a13], [%[s1]], #8\n\t"
                   "cmp %[w], %[end]\n\t"
                   "bne 1b\n\t"
                   : [x] "+r"(pair), [w] "+r"(w), [s0] "+r"(sums0), [s1] "+r"(sums1),
                     [a00] "=&r"(a00), [a01] "=&r"(a01), [a02] "=&r"(a02), [a03] "=&r"(a03),
                     [a10] "=&r"(a10), [a11] "=&r"(a11), [a12] "=&r"(a12), [a13] "=&r"(a13)
                   : [rb] "r"(row_bytes), [end] "r"(end)
                   : "q0", "q1", "q2", "q3", "q4", "q5", "q6", "cc", "memory");
#undef QK_S4_MVE_SHORT_CHANNEL
}

/* out0[o + j] = requant(bias[o + j] + sums0[j] / 16) for j < n, and out1 from sums1
 * unless out1 is NULL: four channels at a time with their constants loaded once for both
 * pixels when every shift is <= -2 (`vector_rq`), else one by one. */
static void qk_s4_mve_requant(const int32_t *sums0, const int32_t *sums1, int32_t n,
                              const int32_t *bias, const qanas_requant_t *rq, int32_t o,
                              int32_t vector_rq, int8_t *out0, int8_t *out1) {
  const int32_t zp = rq->output_zero_point, lo = rq->qmin, hi = rq->qmax;
  const int32_t *b = bias + o, *m = rq->multiplier + o, *sh = rq->shift + o;
  if (vector_rq) {
    for (int32_t j = 0; j < n; j += 4) {
      const mve_pred16_t p = vctp32q((uint32_t)(n - j));
      const int32x4_t vb = vldrwq_z_s32(b + j, p);
      const int32x4_t vm = vldrwq_z_s32(m + j, p), vs = vldrwq_z_s32(sh + j, p);
      const int32x4_t a0 = vaddq_s32(vshrq_n_s32(vldrwq_s32(sums0 + j), 4), vb);
      vstrbq_p_s32(out0 + o + j, qk_mve_requantize(a0, vm, vs, zp, lo, hi), p);
      if (out1 != 0) {
        const int32x4_t a1 = vaddq_s32(vshrq_n_s32(vldrwq_s32(sums1 + j), 4), vb);
        vstrbq_p_s32(out1 + o + j, qk_mve_requantize(a1, vm, vs, zp, lo, hi), p);
      }
    }
    return;
  }
  for (int32_t j = 0; j < n; ++j) { /* a shift > -2 somewhere (scales >= 0.25) */
    out0[o + j] = (int8_t)qk_requantize(b[j] + (sums0[j] >> 4), m[j], sh[j], zp, lo, hi);
    if (out1 != 0) {
      out1[o + j] = (int8_t)qk_requantize(b[j] + (sums1[j] >> 4), m[j], sh[j], zp, lo, hi);
    }
  }
}

/* Output channels o_first .. o_first + count of the pair buffer's two pixels (out1 NULL:
 * only the first is stored), against `count` packed rows from `rows`. */
static void qk_s4_mve_pixels(const int8_t *pair, const uint8_t *rows, int32_t row_bytes,
                             int32_t count, const int32_t *bias, const qanas_requant_t *rq,
                             int32_t o_first, int32_t vector_rq, int8_t *out0, int8_t *out1) {
  int32_t sums[2][QK_S4_MVE_PASS] __attribute__((aligned(16)));
  for (int32_t o0 = 0; o0 < count; o0 += QK_S4_MVE_PASS) {
    const int32_t n = count - o0 < QK_S4_MVE_PASS ? count - o0 : QK_S4_MVE_PASS;
    int32_t done = 0;
    if (row_bytes <= QK_S4_MVE_STEP / 2) { /* rows of one step: blocks in one loop */
      /* rows left to qk_s4_mve_sums so that the loop's 16-byte loads stay in the n rows:
       * (n - done + 1) row_bytes >= 16 */
      const int32_t left = (QK_S4_MVE_STEP / 2 + row_bytes - 1) / row_bytes - 1;
      done = (n - (left > 1 ? left : 1)) / QK_S4_MVE_ROWS * QK_S4_MVE_ROWS;
    }
    if (done > 0) {
      qk_s4_mve_short_rows(pair, rows + o0 * row_bytes, row_bytes, done, sums[0], sums[1]);
    }
    qk_s4_mve_sums(pair, rows + (o0 + done) * row_bytes, row_bytes, n - done, out1 != 0,
                   sums[0] + done, sums[1] + done);
    qk_s4_mve_requant(sums[0], sums[1], n, bias, rq, o_first + o0, vector_rq, out0, out1);
  }
}
#endif

/* acc[p * 2 + j] += sum_t x_p[t] * w_j[t] over `depth` int8 inputs for pixels x0, x1 and
 * packed rows w0, w1 (a block of one pixel or one row passes the same pointer twice). */
static QK_NOINLINE void qk_s4_dot_2x2(const int8_t *x0, const int8_t *x1, const uint8_t *w0,
                                      const uint8_t *w1, int32_t depth, int32_t *acc) {
  int32_t t = 0;
#if defined(QK_S4_DSP) && QK_FULL_ASM
  t = qk_s4_dsp_groups(x0, x1, w0, w1, depth, acc);
#elif defined(QK_S4_AVX2)
  __m256i s00 = _mm256_setzero_si256(), s01 = s00, s10 = s00, s11 = s00;
  for (; t + 32 <= depth; t += 32) {
    __m256i a_lo, a_hi, b_lo, b_hi;
    qk_s4_avx2_unpack32(w0 + t / 2, &a_lo, &a_hi);
    qk_s4_avx2_unpack32(w1 + t / 2, &b_lo, &b_hi);
    const __m256i x0_lo = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(x0 + t)));
    const __m256i x0_hi = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(x0 + t + 16)));
    const __m256i x1_lo = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(x1 + t)));
    const __m256i x1_hi = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(x1 + t + 16)));
    s00 = _mm256_add_epi32(s00, _mm256_add_epi32(_mm256_madd_epi16(x0_lo, a_lo),
                                                 _mm256_madd_epi16(x0_hi, a_hi)));
    s01 = _mm256_add_epi32(s01, _mm256_add_epi32(_mm256_madd_epi16(x0_lo, b_lo),
                                                 _mm256_madd_epi16(x0_hi, b_hi)));
    s10 = _mm256_add_epi32(s10, _mm256_add_epi32(_mm256_madd_epi16(x1_lo, a_lo),
                                                 _mm256_madd_epi16(x1_hi, a_hi)));
    s11 = _mm256_add_epi32(s11, _mm256_add_epi32(_mm256_madd_epi16(x1_lo, b_lo),
                                                 _mm256_madd_epi16(x1_hi, b_hi)));
  }
  acc[0] += qk_s4_avx2_sum(s00);
  acc[1] += qk_s4_avx2_sum(s01);
  acc[2] += qk_s4_avx2_sum(s10);
  acc[3] += qk_s4_avx2_sum(s11);
#endif
  for (; t < depth; ++t) {
    const int32_t a = qk_s4_weight(w0, t), b = qk_s4_weight(w1, t);
    acc[0] += x0[t] * a;
    acc[1] += x0[t] * b;
    acc[2] += x1[t] * a;
    acc[3] += x1[t] * b;
  }
}

/* Requantizes a block's accumulators into out0 (and out1 unless NULL) at channel o. */
QK_INLINE void qk_s4_store(const int32_t *acc, const qanas_requant_t *rq, int32_t o,
                           int32_t rows, int8_t *out0, int8_t *out1) {
  for (int32_t j = 0; j < rows; ++j) {
    const int32_t m = rq->multiplier[o + j], s = rq->shift[o + j];
    out0[o + j] = (int8_t)qk_requantize(acc[j], m, s, rq->output_zero_point, rq->qmin,
                                        rq->qmax);
    if (out1 != 0) {
      out1[o + j] = (int8_t)qk_requantize(acc[2 + j], m, s, rq->output_zero_point, rq->qmin,
                                          rq->qmax);
    }
  }
}

/* Output channels o0 .. o0 + count of one or two pixels (x1 == x0, out1 NULL for one).
 * A window is `runs` runs of `run` inputs, `x_step` bytes apart (one run: a pointwise
 * pixel or a gathered window; kernel_h runs: an inside window read in place), against
 * rows of `row_bytes` starting at `rows` whose run r starts at weight r * run (a multiple
 * of QANAS_S4_GROUP when runs > 1, so each run starts on a packed word). */
static void qk_s4_channels(const int8_t *x0, const int8_t *x1, int32_t x_step, int32_t runs,
                           int32_t run, const uint8_t *rows, int32_t row_bytes, int32_t o0,
                           int32_t count, const int32_t *bias, const qanas_requant_t *rq,
                           int8_t *out0, int8_t *out1) {
  for (int32_t j = 0; j < count; j += 2) {
    const int32_t o = o0 + j, two = j + 1 < count;
    const uint8_t *w0 = rows + j * row_bytes, *w1 = two ? w0 + row_bytes : w0;
    int32_t acc[4] = {bias[o], two ? bias[o + 1] : 0, bias[o], two ? bias[o + 1] : 0};
    for (int32_t r = 0; r < runs; ++r) {
      qk_s4_dot_2x2(x0 + r * x_step, x1 + r * x_step, w0 + r * run / 2, w1 + r * run / 2, run,
                    acc);
    }
    qk_s4_store(acc, rq, o, 1 + two, out0, out1);
  }
}

qanas_status_t qanas_pointwise_conv_s4(int32_t pixels, int32_t in_c, int32_t out_c,
                                       const int8_t *input, const uint8_t *weights,
                                       const int32_t *bias, const qanas_requant_t *rq,
                                       int8_t *output) {
  if (input == 0 || weights == 0 || bias == 0 || rq == 0 || output == 0 || pixels < 0 ||
      in_c <= 0 || out_c <= 0 || in_c > QANAS_S4_MAX_DEPTH) {
    return QANAS_ERROR_BAD_ARGUMENT;
  }
  const int32_t row_bytes = qanas_s4_row_bytes(in_c);
  int32_t p = 0;
#if defined(QK_S4_MVE)
  if (in_c <= QK_S4_MVE_DEPTH_MAX) {
    const int32_t vector_rq = qk_all_narrow_shifts(rq->shift, out_c);
    int8_t pair[2 * QK_S4_MVE_DEPTH_MAX] __attribute__((aligned(16)));
    for (; p < pixels; p += 2) { /* a last single pixel: copied to both slots */
      const int32_t two = p + 1 < pixels;
      const int8_t *x0 = input + p * in_c;
      int8_t *out0 = output + p * out_c;
      qk_s4_mve_put_runs(pair, 0, x0, 1, in_c, 0);
      qk_s4_mve_put_runs(pair, 1, two ? x0 + in_c : x0, 1, in_c, 0);
      qk_s4_mve_pixels(pair, weights, row_bytes, out_c, bias, rq, 0, vector_rq, out0,
                       two ? out0 + out_c : 0);
    }
    return QANAS_OK;
  }
#endif
#if defined(QK_S4_DSP)
  for (; in_c <= QK_S4_QUAD_MAX && p + QK_S4_QUAD <= pixels; p += QK_S4_QUAD) {
    const int8_t *const px[QK_S4_QUAD] = {input + p * in_c, input + (p + 1) * in_c,
                                          input + (p + 2) * in_c, input + (p + 3) * in_c};
    int8_t *const out[QK_S4_QUAD] = {output + p * out_c, output + (p + 1) * out_c,
                                     output + (p + 2) * out_c, output + (p + 3) * out_c};
    qk_s4_dsp_quad(px, 0, 1, in_c, in_c, weights, row_bytes, 0, out_c, bias, rq, out);
  }
#endif
  for (; p < pixels; p += 2) {
    const int32_t two = p + 1 < pixels;
    const int8_t *x0 = input + p * in_c;
    int8_t *out0 = output + p * out_c;
    qk_s4_channels(x0, two ? x0 + in_c : x0, 0, 1, in_c, weights, row_bytes, 0, out_c, bias,
                   rq, out0, two ? out0 + out_c : 0);
  }
  return QANAS_OK;
}

#if !defined(QK_S4_MVE)
/* Copies the window of output (oy, ox), group g, into `patch` in weight order (ky, kx,
 * channel); taps in the padding read the input zero point. */
static void qk_s4_gather(const qanas_conv_params_t *c, const int8_t *input, int32_t g,
                         int32_t oy, int32_t ox, int8_t *patch) {
  const int32_t cin_g = c->in_c / c->groups;
  const int8_t zp = (int8_t)c->input_zero_point;
  for (int32_t ky = 0; ky < c->kernel_h; ++ky) {
    const int32_t iy = oy * c->stride_h - c->pad_top + ky * c->dilation_h;
    for (int32_t kx = 0; kx < c->kernel_w; ++kx, patch += cin_g) {
      const int32_t ix = ox * c->stride_w - c->pad_left + kx * c->dilation_w;
      if (iy < 0 || iy >= c->in_h || ix < 0 || ix >= c->in_w) {
        for (int32_t i = 0; i < cin_g; ++i) {
          patch[i] = zp;
        }
        continue;
      }
      __builtin_memcpy(patch, input + (iy * c->in_w + ix) * c->in_c + g * cin_g,
                       (uint32_t)cin_g);
    }
  }
}
#endif

/* Non-zero when every tap of the window at output (oy, ox) lies inside the input. */
static int32_t qk_s4_inside(const qanas_conv_params_t *c, int32_t oy, int32_t ox) {
  const int32_t y0 = oy * c->stride_h - c->pad_top, x0 = ox * c->stride_w - c->pad_left;
  return y0 >= 0 && x0 >= 0 && y0 + (c->kernel_h - 1) * c->dilation_h < c->in_h &&
         x0 + (c->kernel_w - 1) * c->dilation_w < c->in_w;
}

static int32_t qk_s4_params_valid(const qanas_conv_params_t *c) {
  return c->in_h > 0 && c->in_w > 0 && c->in_c > 0 && c->out_h > 0 && c->out_w > 0 &&
         c->out_c > 0 && c->kernel_h > 0 && c->kernel_w > 0 && c->stride_h > 0 &&
         c->stride_w > 0 && c->dilation_h > 0 && c->dilation_w > 0 && c->pad_top >= 0 &&
         c->pad_left >= 0 && c->groups > 0 && c->in_c % c->groups == 0 &&
         c->out_c % c->groups == 0 &&
         c->kernel_h * c->kernel_w * (c->in_c / c->groups) <= QANAS_S4_PATCH_MAX;
}

#if defined(QK_S4_MVE)
/* The window of output (oy, ox), group g, as pixel p of the pair buffer in weight order
 * (ky, kx, channel), then padded: taps in the padding read the input zero point; an
 * ungrouped window without dilation along w copies each kernel row's inside taps as one
 * run. */
static void qk_s4_mve_gather(const qanas_conv_params_t *c, const int8_t *input, int32_t g,
                             int32_t oy, int32_t ox, int32_t p, int8_t *pair) {
  const int32_t cin_g = c->in_c / c->groups;
  const int8_t zp = (int8_t)c->input_zero_point;
  const int32_t x0 = ox * c->stride_w - c->pad_left;
  const int32_t run = c->kernel_w * cin_g;
  const int32_t runs = c->groups == 1 && c->dilation_w == 1;
  int32_t t = 0;
  for (int32_t ky = 0; ky < c->kernel_h; ++ky, t += run) {
    const int32_t iy = oy * c->stride_h - c->pad_top + ky * c->dilation_h;
    if (iy < 0 || iy >= c->in_h) {
      qk_s4_mve_put(pair, p, t, 0, zp, run);
      continue;
    }
    const int8_t *row = input + iy * c->in_w * c->in_c + g * cin_g;
    if (runs) {
      const int32_t before = x0 < 0 ? -x0 : 0, after = c->in_w - x0;
      const int32_t kxa = before < c->kernel_w ? before : c->kernel_w;
      const int32_t kxb = after < c->kernel_w ? (after > kxa ? after : kxa) : c->kernel_w;
      qk_s4_mve_put(pair, p, t, 0, zp, kxa * cin_g);
      qk_s4_mve_put(pair, p, t + kxa * cin_g, row + (x0 + kxa) * c->in_c, 0,
                    (kxb - kxa) * cin_g);
      qk_s4_mve_put(pair, p, t + kxb * cin_g, 0, zp, (c->kernel_w - kxb) * cin_g);
      continue;
    }
    for (int32_t kx = 0; kx < c->kernel_w; ++kx) {
      const int32_t ix = x0 + kx * c->dilation_w;
      const int32_t inside = ix >= 0 && ix < c->in_w;
      qk_s4_mve_put(pair, p, t + kx * cin_g, inside ? row + ix * c->in_c : 0, zp, cin_g);
    }
  }
  qk_s4_mve_pad(pair, p, t);
}

/* Helium conv2d: output pixels in pairs along each row (a last single one paired with
 * itself), both windows copied into the pair buffer (ungrouped windows inside the input
 * as kernel_h runs, the others gathered), every group's rows against it. */
static qanas_status_t qk_s4_mve_conv2d(const qanas_conv_params_t *c, const int8_t *input,
                                       const uint8_t *weights, const int32_t *bias,
                                       const qanas_requant_t *rq, int8_t *output) {
  const int32_t cout_g = c->out_c / c->groups;
  const int32_t row_bytes = qanas_s4_row_bytes(c->kernel_h * c->kernel_w *
                                               (c->in_c / c->groups));
  const int32_t vector_rq = qk_all_narrow_shifts(rq->shift, c->out_c);
  const int32_t runs = c->groups == 1 && c->dilation_w == 1;
  const int32_t run = c->kernel_w * c->in_c, row_step = c->dilation_h * c->in_w * c->in_c;
  int8_t pair[2 * QK_S4_MVE_DEPTH_MAX] __attribute__((aligned(16)));
  for (int32_t oy = 0; oy < c->out_h; ++oy) {
    for (int32_t ox = 0; ox < c->out_w; ox += 2) {
      const int32_t two = ox + 1 < c->out_w;
      int8_t *out0 = output + (oy * c->out_w + ox) * c->out_c;
      if (runs && qk_s4_inside(c, oy, ox) && qk_s4_inside(c, oy, ox + two)) {
        const int8_t *x = input + ((oy * c->stride_h - c->pad_top) * c->in_w +
                                   (ox * c->stride_w - c->pad_left)) * c->in_c;
        qk_s4_mve_put_runs(pair, 0, x, c->kernel_h, run, row_step);
        qk_s4_mve_put_runs(pair, 1, x + two * c->stride_w * c->in_c, c->kernel_h, run,
                           row_step);
        qk_s4_mve_pixels(pair, weights, row_bytes, c->out_c, bias, rq, 0, vector_rq, out0,
                         two ? out0 + c->out_c : 0);
        continue;
      }
      for (int32_t g = 0; g < c->groups; ++g) {
        qk_s4_mve_gather(c, input, g, oy, ox, 0, pair);
        qk_s4_mve_gather(c, input, g, oy, two ? ox + 1 : ox, 1, pair);
        qk_s4_mve_pixels(pair, weights + g * cout_g * row_bytes, row_bytes, cout_g, bias, rq,
                         g * cout_g, vector_rq, out0, two ? out0 + c->out_c : 0);
      }
    }
  }
  return QANAS_OK;
}
#endif

#if defined(QK_S4_DSP) && !defined(QK_S4_MVE)
/* The output pixels of row oy in blocks of 4 (windows up to QK_S4_QUAD_MAX inputs): inside
 * windows of whole-word kernel rows read in place, the others gathered. Returns the first
 * output column left for the pixel pairs. */
static int32_t qk_s4_dsp_conv_quads(const qanas_conv_params_t *c, const int8_t *input,
                                    const uint8_t *weights, int32_t row_bytes,
                                    const int32_t *bias, const qanas_requant_t *rq, int32_t oy,
                                    int8_t *output) {
  const int32_t cout_g = c->out_c / c->groups;
  const int32_t depth = c->kernel_h * c->kernel_w * (c->in_c / c->groups);
  const int32_t run = c->kernel_w * c->in_c;
  const int32_t in_place = c->groups == 1 && c->dilation_w == 1 && run % QANAS_S4_GROUP == 0;
  int8_t patch[QK_S4_QUAD][QK_S4_QUAD_MAX];
  int32_t ox = 0;
  for (; ox + QK_S4_QUAD <= c->out_w; ox += QK_S4_QUAD) {
    int8_t *const out[QK_S4_QUAD] = {output + (oy * c->out_w + ox) * c->out_c,
                                     output + (oy * c->out_w + ox + 1) * c->out_c,
                                     output + (oy * c->out_w + ox + 2) * c->out_c,
                                     output + (oy * c->out_w + ox + 3) * c->out_c};
    if (in_place && qk_s4_inside(c, oy, ox) && qk_s4_inside(c, oy, ox + QK_S4_QUAD - 1)) {
      const int8_t *x = input + ((oy * c->stride_h - c->pad_top) * c->in_w +
                                 (ox * c->stride_w - c->pad_left)) * c->in_c;
      const int32_t step = c->stride_w * c->in_c;
      const int8_t *const px[QK_S4_QUAD] = {x, x + step, x + 2 * step, x + 3 * step};
      qk_s4_dsp_quad(px, c->dilation_h * c->in_w * c->in_c, c->kernel_h, run, depth, weights,
                     row_bytes, 0, c->out_c, bias, rq, out);
      continue;
    }
    for (int32_t g = 0; g < c->groups; ++g) {
      for (int32_t p = 0; p < QK_S4_QUAD; ++p) {
        qk_s4_gather(c, input, g, oy, ox + p, patch[p]);
      }
      const int8_t *const px[QK_S4_QUAD] = {patch[0], patch[1], patch[2], patch[3]};
      qk_s4_dsp_quad(px, 0, 1, depth, depth, weights + g * cout_g * row_bytes, row_bytes,
                     g * cout_g, cout_g, bias, rq, out);
    }
  }
  return ox;
}
#endif

qanas_status_t qanas_conv2d_s4(const qanas_conv_params_t *c, const int8_t *input,
                               const uint8_t *weights, const int32_t *bias,
                               const qanas_requant_t *rq, int8_t *output) {
  if (c == 0 || input == 0 || weights == 0 || bias == 0 || rq == 0 || output == 0 ||
      !qk_s4_params_valid(c)) {
    return QANAS_ERROR_BAD_ARGUMENT;
  }
  if (c->kernel_h == 1 && c->kernel_w == 1 && c->stride_h == 1 && c->stride_w == 1 &&
      c->pad_top == 0 && c->pad_left == 0 && c->groups == 1 && c->out_h == c->in_h &&
      c->out_w == c->in_w) {
    return qanas_pointwise_conv_s4(c->in_h * c->in_w, c->in_c, c->out_c, input, weights,
                                   bias, rq, output);
  }
#if defined(QK_S4_MVE)
  return qk_s4_mve_conv2d(c, input, weights, bias, rq, output);
#else
  const int32_t cout_g = c->out_c / c->groups;
  const int32_t depth = c->kernel_h * c->kernel_w * (c->in_c / c->groups);
  const int32_t row_bytes = qanas_s4_row_bytes(depth);
  /* Ungrouped, undilated along w, kernel rows of whole packed words: an inside window is
   * kernel_h runs of the input read in place; every other window is gathered. */
  const int32_t run = c->kernel_w * c->in_c;
  const int32_t in_place = c->groups == 1 && c->dilation_w == 1 && run % QANAS_S4_GROUP == 0;
  const int32_t row_step = c->dilation_h * c->in_w * c->in_c;
  int8_t patch[2][QANAS_S4_PATCH_MAX];
  for (int32_t oy = 0; oy < c->out_h; ++oy) {
    int32_t ox = 0;
#if defined(QK_S4_DSP)
    if (depth <= QK_S4_QUAD_MAX) {
      ox = qk_s4_dsp_conv_quads(c, input, weights, row_bytes, bias, rq, oy, output);
    }
#endif
    for (; ox < c->out_w; ox += 2) {
      const int32_t two = ox + 1 < c->out_w;
      int8_t *out0 = output + (oy * c->out_w + ox) * c->out_c;
      int8_t *out1 = two ? out0 + c->out_c : 0;
      if (in_place && qk_s4_inside(c, oy, ox) && (!two || qk_s4_inside(c, oy, ox + 1))) {
        const int8_t *x0 = input + ((oy * c->stride_h - c->pad_top) * c->in_w +
                                    (ox * c->stride_w - c->pad_left)) * c->in_c;
        qk_s4_channels(x0, two ? x0 + c->stride_w * c->in_c : x0, row_step, c->kernel_h, run,
                       weights, row_bytes, 0, c->out_c, bias, rq, out0, out1);
        continue;
      }
      for (int32_t g = 0; g < c->groups; ++g) {
        qk_s4_gather(c, input, g, oy, ox, patch[0]);
        if (two) {
          qk_s4_gather(c, input, g, oy, ox + 1, patch[1]);
        }
        qk_s4_channels(patch[0], patch[two], 0, 1, depth, weights + g * cout_g * row_bytes,
                       row_bytes, g * cout_g, cout_g, bias, rq, out0, out1);
      }
    }
  }
  return QANAS_OK;
#endif
}
