/* Internal to the kernel library: ISA selection, requantization and the dot-product
 * micro-kernel shared by the convolutions. Not part of the API (qanas_kernels.h). */
#ifndef QANAS_KERNELS_INTERNAL_H_
#define QANAS_KERNELS_INTERNAL_H_

#include <stdint.h>

#include "qanas_kernels.h"

/* QANAS_KERNELS_NO_MVE: a Helium core runs the DSP path instead, for weights packed OHWI
 * (a project compiled for another core; compiler/project/files.py defines it then). */
#if !defined(QANAS_KERNELS_PORTABLE) && !defined(QANAS_KERNELS_NO_MVE) && \
    defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1)
#define QK_ISA_MVE 1
#include <arm_mve.h>
#elif !defined(QANAS_KERNELS_PORTABLE) && defined(__ARM_FEATURE_DSP) && !defined(__aarch64__)
#define QK_ISA_DSP 1
#include <arm_acle.h>
#elif !defined(QANAS_KERNELS_PORTABLE) && defined(__ARM_NEON) && defined(__aarch64__)
#define QK_ISA_NEON 1
#include <arm_neon.h>
#elif !defined(QANAS_KERNELS_PORTABLE) && defined(__AVX2__)
#define QK_ISA_AVX2 1
#include <immintrin.h>
#else
#define QK_ISA_PORTABLE 1
#endif

#if defined(__GNUC__) || defined(__clang__)
#define QK_INLINE static inline __attribute__((always_inline))
#define QK_NOINLINE __attribute__((noinline))
#define QK_RESTRICT __restrict__
/* A static helper of a shared header that not every including file calls. */
#define QK_MAYBE_UNUSED __attribute__((unused))
#else
#define QK_INLINE static inline
#define QK_NOINLINE
#define QK_RESTRICT
#define QK_MAYBE_UNUSED
#endif

/* 1 where the written-out asm loops that hold nearly every core register build: an -O0
 * build keeps r7 as its frame pointer and finds no allocation for them, so it runs the
 * C loops those blocks stand in for (int4 on cortex-m55: the DSP path's C loops). */
#if defined(__OPTIMIZE__)
#define QK_FULL_ASM 1
#else
#define QK_FULL_ASM 0
#endif

#if defined(QK_ISA_DSP)
/* SXTB16 of a word rotated right by 8: halfwords (b1, b3). GCC 12 has no ACLE
 * __sxtb16_ror and does not fold a separate ROR into SXTB16, so it is spelled here. */
QK_INLINE int32_t qk_sxtb16_ror8(int32_t v) {
  int32_t r;
  __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(v));
  return r;
}

/* Four int8 values as one word (an unaligned LDR is fine on M3/M4/M7/M33). */
QK_INLINE int32_t qk_read_word(const int8_t *p) {
  int32_t v;
  __builtin_memcpy(&v, p, sizeof(v));
  return v;
}
#endif

/* round_half_even(acc * multiplier / 2^(31 - shift)) for shift >= -1 (scales of 0.25 and
 * more, rare): the 64-bit formula of compiler.int8.rounding_right_shift. Out of line so
 * that its 64-bit shifts stay off the common path. */
int32_t qk_requantize_wide(int32_t acc, int32_t multiplier, int32_t shift);

/* round_half_even(acc * multiplier / 2^(31 - shift)) + zero point, clamped: the exact
 * formula of compiler.int8.requantize. The common case (shift <= -2, i.e. scales below
 * 0.25) needs only the high word h of the 64-bit product p = h 2^32 + l: with
 * s = -shift - 1 >= 1, the formula's p + 2^(n-1) - 1 + odd (n = 32 + s, odd = bit s of h)
 * has the high word h + 2^(s-1) - 1 + (odd | (l != 0)) and round_half_even(p / 2^n) is
 * that shifted right by s: one 32x32 multiply, no 64-bit shift. */
QK_INLINE int32_t qk_requantize(int32_t acc, int32_t multiplier, int32_t shift,
                                int32_t zero_point, int32_t qmin, int32_t qmax) {
  int32_t q;
  if (__builtin_expect(shift <= -2, 1)) {
    const int64_t product = (int64_t)acc * multiplier;
    const int32_t s = -shift - 1;
    const int32_t high = (int32_t)(product >> 32); /* |high| < 2^30: no overflow below */
    /* odd | (low != 0) as one test of (odd | low) */
    const int32_t up = ((((uint32_t)high >> s) & 1u) | (uint32_t)product) != 0u;
    /* (a + 2^(s-1)) >> s as ((a >> (s-1)) + 1) >> 1: no constant to build */
    q = (((high - 1 + up) >> (s - 1)) + 1) >> 1;
  } else {
    q = qk_requantize_wide(acc, multiplier, shift);
  }
  q += zero_point;
  q = q < qmin ? qmin : q;
  return q > qmax ? qmax : q;
}

#if defined(QK_ISA_MVE)
/* Eight int32 accumulators a0 .. a7, zeroed, in the eight even core registers r0 .. r12
 * and lr: VMLADAVA wants an even accumulator register, and for the written-out GEMM loops
 * (int8 qk_mve_gemm_sums, int4 qk_s4_mve_sums) GCC 12 did not find the eight alone. */
#define QK_MVE_EVEN_ACCUMULATORS(a0, a1, a2, a3, a4, a5, a6, a7) \
  register int32_t a0 __asm__("r0") = 0;                          \
  register int32_t a1 __asm__("r2") = 0;                          \
  register int32_t a2 __asm__("r4") = 0;                          \
  register int32_t a3 __asm__("r6") = 0;                          \
  register int32_t a4 __asm__("r8") = 0;                          \
  register int32_t a5 __asm__("r10") = 0;                         \
  register int32_t a6 __asm__("r12") = 0;                         \
  register int32_t a7 __asm__("lr") = 0

/* Four lanes of qk_requantize (all shifts <= -2), as int32 lanes ready for VSTRB.32. */
QK_INLINE int32x4_t qk_mve_requantize(int32x4_t acc, int32x4_t multiplier, int32x4_t shift,
                                      int32_t zero_point, int32_t qmin, int32_t qmax) {
  const int32x4_t high = vmulhq_s32(acc, multiplier);
  const int32x4_t low = vmulq_s32(acc, multiplier);
  /* y = 2 * high + (low != 0): the sticky bit is min(low, 1) unsigned, and VSLI shifts
   * high in above it. */
  const int32x4_t sticky = vreinterpretq_s32_u32(
      vminq_u32(vreinterpretq_u32_s32(low), vdupq_n_u32(1)));
  const int32x4_t y = vsliq_n_s32(sticky, high, 1);
  /* Half to even by k = -shift bits: VRSHL rounds half up, exactly (no overflow), so
   * subtract 1 unless the kept part is odd: (y - 1 + odd) = y - (1 & ~kept) rounded half
   * up. y > INT32_MIN (|acc * multiplier| < 2^62), so y - 1 does not wrap. */
  const int32x4_t even = vbicq_s32(vdupq_n_s32(1), vshlq_s32(y, shift));
  int32x4_t q = vrshlq_s32(vsubq_s32(y, even), shift);
  q = vaddq_n_s32(q, zero_point);
  q = vmaxq_s32(q, vdupq_n_s32(qmin));
  return vminq_s32(q, vdupq_n_s32(qmax));
}
#elif defined(QK_ISA_NEON)
/* round_half_even(p / 2^n) of two 64-bit products, n = 31 - shift (1 .. 62): the formula
 * of compiler.int8.rounding_right_shift, (p + 2^(n-1) - 1 + odd) >> n with odd = bit n
 * of p, in 64-bit lanes (SSHL by -n shifts right arithmetically). */
QK_INLINE int64x2_t qk_neon_round64(int64x2_t p, int64x2_t minus_n, int64x2_t half_m1) {
  const int64x2_t odd = vandq_s64(vshlq_s64(p, minus_n), vdupq_n_s64(1));
  return vshlq_s64(vaddq_s64(vaddq_s64(p, half_m1), odd), minus_n);
}

/* Four lanes of qk_requantize (every shift <= -2) as int32. */
QK_INLINE int32x4_t qk_neon_requantize(int32x4_t acc, int32x4_t multiplier, int32x4_t shift,
                                       int32_t zero_point, int32_t qmin, int32_t qmax) {
  const int32x4_t n = vsubq_s32(vdupq_n_s32(31), shift);
  const int64x2_t n_lo = vmovl_s32(vget_low_s32(n)), n_hi = vmovl_s32(vget_high_s32(n));
  const int64x2_t one = vdupq_n_s64(1);
  const int64x2_t half_lo = vsubq_s64(vshlq_s64(one, vsubq_s64(n_lo, one)), one);
  const int64x2_t half_hi = vsubq_s64(vshlq_s64(one, vsubq_s64(n_hi, one)), one);
  const int64x2_t lo = qk_neon_round64(vmull_s32(vget_low_s32(acc), vget_low_s32(multiplier)),
                                       vnegq_s64(n_lo), half_lo);
  const int64x2_t hi = qk_neon_round64(vmull_high_s32(acc, multiplier), vnegq_s64(n_hi),
                                       half_hi);
  int32x4_t q = vcombine_s32(vmovn_s64(lo), vmovn_s64(hi));
  q = vaddq_s32(q, vdupq_n_s32(zero_point));
  q = vmaxq_s32(q, vdupq_n_s32(qmin));
  return vminq_s32(q, vdupq_n_s32(qmax));
}

#elif defined(QK_ISA_AVX2)
/* Eight lanes of qk_requantize (all shifts <= -2): the high word h and the sticky low
 * word of the 64-bit products (VPMULDQ on even and odd lanes), then the 32-bit
 * half-to-even shift of qk_requantize with variable shifts (VPSRAVD). */
QK_INLINE __m256i qk_avx2_requantize(__m256i acc, __m256i multiplier, __m256i shift,
                                     int32_t zero_point, int32_t qmin, int32_t qmax) {
  const __m256i one = _mm256_set1_epi32(1);
  const __m256i even = _mm256_mul_epi32(acc, multiplier);
  const __m256i odd = _mm256_mul_epi32(_mm256_srli_epi64(acc, 32),
                                       _mm256_srli_epi64(multiplier, 32));
  const __m256i high = _mm256_blend_epi32(_mm256_srli_epi64(even, 32), odd, 0xaa);
  const __m256i low = _mm256_blend_epi32(even, _mm256_slli_epi64(odd, 32), 0xaa);
  const __m256i s = _mm256_sub_epi32(_mm256_setzero_si256(), _mm256_add_epi32(shift, one));
  const __m256i low_zero = _mm256_cmpeq_epi32(low, _mm256_setzero_si256());
  const __m256i up = _mm256_or_si256(_mm256_and_si256(_mm256_srlv_epi32(high, s), one),
                                     _mm256_andnot_si256(low_zero, one));
  __m256i q = _mm256_srav_epi32(_mm256_sub_epi32(_mm256_add_epi32(high, up), one),
                                _mm256_sub_epi32(s, one));
  q = _mm256_srai_epi32(_mm256_add_epi32(q, one), 1);
  q = _mm256_add_epi32(q, _mm256_set1_epi32(zero_point));
  q = _mm256_max_epi32(q, _mm256_set1_epi32(qmin));
  return _mm256_min_epi32(q, _mm256_set1_epi32(qmax));
}
#endif

/* Non-zero when every channel's shift is <= -2 (the vector requantization applies). */
int32_t qk_all_narrow_shifts(const int32_t *shift, int32_t count);

/* round_half_even(value / 2^n) for a 64-bit value, 1 <= n <= 62 (the add's shared shift). */
QK_INLINE int64_t qk_rounding_right_shift64(int64_t value, int32_t n) {
  const int64_t odd = (value >> n) & 1;
  return (value + (((int64_t)1 << (n - 1)) - 1) + odd) >> n;
}

/* A run of out_w output pixels of a multiplier-1 depthwise conv whose windows all lie
 * inside its input (padding already in place): output ox, channel c is requant(bias[c] +
 * sum over taps (ky, kx) of rows[ky][ox * step + kx * col + c] * weights[(ky * kernel_w
 * + kx) * channels + c]). `rows` are the kernel_h kernel rows' pointers (one image row
 * apart in a tensor; anywhere in one buffer, such as the fused inverted residual's
 * ring), `step` and `col` byte strides (stride and dilation times channels).
 * `vector_requant`: qk_all_narrow_shifts(rq->shift, channels). The micro-kernels of
 * every ISA; qanas_depthwise_conv2d_s8 runs its inside windows through it too. */
void qk_depthwise_row(const int8_t *const *rows, int32_t kernel_h, int32_t kernel_w,
                      int32_t out_w, int32_t step, int32_t col, int32_t channels,
                      const int8_t *weights, const int32_t *bias, const qanas_requant_t *rq,
                      int32_t vector_requant, int8_t *out);

/* The micro-kernel's block: QK_BLOCK_PX output pixels x QK_BLOCK_CH output channels.
 * Helium: 1 x 4 (one input vector against four weight rows, four VMLADAV accumulators;
 * two pixels would need more core registers than there are and GCC spills); AVX2 and
 * NEON 2 x 4 (eight vector accumulators reduced by a VPHADDD / ADDP tree into the block's
 * sums, requantized as vectors); else 2 x 2 (the DSP block: each SXTB16-split word serves
 * two products). */
#if defined(QK_ISA_MVE)
#define QK_BLOCK_PX 1
#define QK_BLOCK_CH 4
#elif defined(QK_ISA_AVX2) || defined(QK_ISA_NEON)
#define QK_BLOCK_PX 2
#define QK_BLOCK_CH 4
#else
#define QK_BLOCK_PX 2
#define QK_BLOCK_CH 2
#endif

/* acc[p * QK_BLOCK_CH + j] += sum_i x_p[i] * w_j[i] for the block's pixels (x0, and x1
 * when QK_BLOCK_PX is 2) and the QK_BLOCK_CH weight rows w_j = w0 + min(j, rows - 1) *
 * w_stride, over `len` int8 values: the inner loop of pointwise and k x k convolutions
 * (rows past `rows` repeat the last one and are not stored). */
/* (qk_block.h) */

/* Requantizes a block: acc[p * QK_BLOCK_CH + j] → out_p[o + j] for j < rows; out1 is
 * NULL for one pixel (always with QK_BLOCK_PX 1). `vector_rq`: every shift is <= -2
 * (qk_all_narrow_shifts). */
/* (qk_block.h) */

#endif /* QANAS_KERNELS_INTERNAL_H_ */
