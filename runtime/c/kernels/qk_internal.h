/* Internal to the kernel library: ISA selection, requantization and the dot-product
 * micro-kernel shared by the convolutions. Not part of the API (qanas_kernels.h). */
#ifndef QANAS_KERNELS_INTERNAL_H_
#define QANAS_KERNELS_INTERNAL_H_

#include <stdint.h>

#include "qanas_kernels.h"

#if !defined(QANAS_KERNELS_PORTABLE) && defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1)
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
#define QK_RESTRICT __restrict__
#else
#define QK_INLINE static inline
#define QK_RESTRICT
#endif

#if defined(QK_ISA_DSP)
/* Rotate right by 8; the compiler folds it into SXTB16's ROR operand. */
QK_INLINE int32_t qk_ror8(int32_t v) {
  return (int32_t)(((uint32_t)v >> 8) | ((uint32_t)v << 24));
}
#endif

/* round_half_even(acc * multiplier / 2^(31 - shift)) + zero point, clamped: the exact
 * formula of compiler.int8.requantize. The common case (shift <= -2, i.e. scales below
 * 0.25) runs in 32-bit arithmetic: the high word of the 64-bit product with the low word
 * reduced to one sticky bit (round to odd) keeps every bit the half-even rounding by the
 * remaining k = -shift >= 2 bits looks at, so the result is the same integer. Larger
 * scales take the 64-bit formula. */
QK_INLINE int32_t qk_requantize(int32_t acc, int32_t multiplier, int32_t shift,
                                int32_t zero_point, int32_t qmin, int32_t qmax) {
  const int64_t product = (int64_t)acc * multiplier;
  int32_t q;
  if (shift <= -2) {
    const int32_t k = -shift;
    const int32_t high = (int32_t)(product >> 32);
    const uint32_t sticky = (uint32_t)product != 0u;
    const int32_t y = (int32_t)(((uint32_t)high << 1) | sticky);
    q = (y >> k) + ((y >> (k - 1)) & 1);     /* round half up, no overflow */
    if (((uint32_t)y << (32 - k)) == 0x80000000u) { /* exact tie: to even */
      q &= ~1;
    }
  } else {
    const int32_t n = 31 - shift; /* 1 .. 32 */
    const int64_t odd = (product >> n) & 1;
    q = (int32_t)((product + (((int64_t)1 << (n - 1)) - 1) + odd) >> n);
  }
  q += zero_point;
  q = q < qmin ? qmin : q;
  return q > qmax ? qmax : q;
}

/* round_half_even(value / 2^n) for a 64-bit value, 1 <= n <= 62 (the add's shared shift). */
QK_INLINE int64_t qk_rounding_right_shift64(int64_t value, int32_t n) {
  const int64_t odd = (value >> n) & 1;
  return (value + (((int64_t)1 << (n - 1)) - 1) + odd) >> n;
}

/* acc[2 * p + c] += sum_i x_p[i] * w_c[i] for two pixels (x0, x1) and two output channels
 * (w0, w1) over `len` int8 values: the inner loop of pointwise and k x k convolutions. */
void qk_dot_2x2(const int8_t *x0, const int8_t *x1, const int8_t *w0, const int8_t *w1,
                int32_t len, int32_t acc[4]);

/* Writes the requantized 2x2 block: output pixel rows out0/out1 (NULL: not written), output
 * channels o and o + 1 (the second only when two_channels). */
void qk_store_2x2(const int32_t acc[4], const qanas_requant_t *rq, int32_t o,
                  int32_t two_channels, int8_t *out0, int8_t *out1);

#endif /* QANAS_KERNELS_INTERNAL_H_ */
