/* Pointwise and k x k convolutions (grouped, strided, dilated, 3-channel stems) over NHWC
 * int8, as blocks of 2 pixels x QK_BLOCK_CH channels of the qk_dot_block micro-kernel. */
#include "qk_block.h"

/* Every pixel's accumulators of a block start at the bias (rows past `rows` repeat). */
QK_INLINE void qk_init_block(int32_t *acc, const int32_t *bias, int32_t o, int32_t rows) {
#if defined(__GNUC__)
#pragma GCC unroll 4
#endif
  for (int32_t j = 0; j < QK_BLOCK_CH; ++j) {
    for (int32_t p = 0; p < QK_BLOCK_PX; ++p) {
      acc[p * QK_BLOCK_CH + j] = bias[o + (j < rows ? j : rows - 1)];
    }
  }
}

#if defined(QK_ISA_DSP)
/* Output channels per pass of qk_dsp_pointwise_pair (its int32 sums live on the stack). */
#define QK_DSP_PASS 64

/* The pieces of qk_dsp_requant_pair / qk_dsp_requant_quad (their comment has the
 * arithmetic). One pixel: the next sum requantized into h (zero point added, not yet
 * clamped) with the channel's constants m, s, bit, half_m1. */
#define QK_DSP_RQ_ROUND                           \
  "ldr %[a], [%[ps]], #4\n\t"                    \
  "smull %[a], %[h], %[a], %[m]\n\t"             \
  "tst %[h], %[bit]\n\t"                         \
  "it ne\n\t"                                    \
  "movne %[a], #1\n\t"                           \
  "cmp %[a], #1\n\t"                             \
  "adc %[h], %[h], %[half_m1]\n\t"               \
  "asr %[h], %[h], %[s]\n\t"                     \
  "add %[h], %[h], %[zp]\n\t"
/* The clamp to [lo, hi], and the clamp to int8 (lo = -128, hi = 127) in one SSAT. */
#define QK_DSP_RQ_CLAMP                           \
  "cmp %[h], %[lo]\n\t"                          \
  "it lt\n\t"                                    \
  "movlt %[h], %[lo]\n\t"                        \
  "cmp %[h], %[hi]\n\t"                          \
  "it gt\n\t"                                    \
  "movgt %[h], %[hi]\n\t"
#define QK_DSP_RQ_SSAT "ssat %[h], #8, %[h]\n\t"
/* A channel's constants from its multiplier and shift (s = -shift - 1, bit = 2^s,
 * half_m1 = 2^(s-1) - 1). */
#define QK_DSP_RQ_CHANNEL                         \
  "ldr %[m], [%[pm]], #4\n\t"                    \
  "ldr %[s], [%[psh]], #4\n\t"                   \
  "mvn %[s], %[s]\n\t"                           \
  "mov %[bit], #1\n\t"                           \
  "lsl %[bit], %[bit], %[s]\n\t"                 \
  "lsr %[half_m1], %[bit], #1\n\t"               \
  "sub %[half_m1], %[half_m1], #1\n\t"
/* The four pixels' outputs of a channel: rows po, po + oc, po + 2 oc, po + 3 oc. */
#define QK_DSP_RQ_QUAD(CLAMP)                                                            \
  "1:\n\t" QK_DSP_RQ_CHANNEL                                                            \
  QK_DSP_RQ_ROUND CLAMP "strb %[h], [%[po]]\n\t"                                        \
  QK_DSP_RQ_ROUND CLAMP "strb %[h], [%[po], %[oc]]\n\t"                                 \
  QK_DSP_RQ_ROUND CLAMP "strb %[h], [%[po], %[oc], lsl #1]\n\t"                         \
  QK_DSP_RQ_ROUND CLAMP "add %[a], %[po], %[oc], lsl #1\n\t"                            \
  "strb %[h], [%[a], %[oc]]\n\t"                                                        \
  "add %[po], %[po], #1\n\t"                                                            \
  "ldr %[a], %[end]\n\t"                                                                \
  "cmp %[ps], %[a]\n\t"                                                                 \
  "bne 1b\n\t"

/* The output operands of those loops: the pointers they walk (sums, multiplier, shift,
 * the output `out_ptr`) and the registers of the arithmetic. */
#define QK_DSP_RQ_OUTPUTS(out_ptr)                                                       \
  [ps] "+r"(sums), [pm] "+r"(multiplier), [psh] "+r"(shift), [po] "+r"(out_ptr),        \
      [m] "=&r"(m), [s] "=&r"(s), [bit] "=&r"(bit), [half_m1] "=&r"(half_m1),           \
      [a] "=&r"(a), [h] "=&r"(h)

/* out0[j] = requant(sums[2 j]) and out1[j] = requant(sums[2 j + 1]) for j < n (n >= 1),
 * every shift <= -2: qk_requantize's rounding with the channel's constants made once for
 * both pixels. With s = -shift - 1, round_half_even(acc * m / 2^(32 + s)) is
 * (h + 2^(s-1) - 1 + (odd | l != 0)) >> s for the product's words h, l and odd = bit s of
 * h: qk_requantize's (((h - 1 + up) >> (s-1)) + 1) >> 1 in one shift (|h| < 2^30, no
 * overflow); the carry of CMP (l | odd), #1 is the rounding bit, so ADC adds it.
 * Written out: GCC 12 kept the clamp bounds and the output pointers on the stack
 * (31 instructions per output); here 20. */
#if QK_FULL_ASM
static QK_NOINLINE void qk_dsp_requant_pair(const int32_t *sums, int32_t n,
                                            const int32_t *multiplier,
                                            const int32_t *shift, const qanas_requant_t *rq,
                                            int8_t *out0, int8_t *out1) {
  const int32_t *const end = sums + 2 * n;
  const int32_t zp = rq->output_zero_point, lo = rq->qmin, hi = rq->qmax;
  const int32_t off = (int32_t)(out1 - out0);
  int32_t m, s, bit, half_m1, a, h;
  __asm__ volatile("1:\n\t" QK_DSP_RQ_CHANNEL
                   QK_DSP_RQ_ROUND QK_DSP_RQ_CLAMP "strb %[h], [%[po]]\n\t"
                   QK_DSP_RQ_ROUND QK_DSP_RQ_CLAMP "strb %[h], [%[po], %[off]]\n\t"
                   "add %[po], %[po], #1\n\t"
                   "ldr %[a], %[end]\n\t"
                   "cmp %[ps], %[a]\n\t"
                   "bne 1b\n\t"
                   : QK_DSP_RQ_OUTPUTS(out0)
                   : [off] "r"(off), [zp] "r"(zp), [lo] "r"(lo), [hi] "r"(hi),
                     [end] "m"(end)
                   : "cc", "memory");
}

/* out[p * out_c + j] = requant(sums[4 j + p]) for j < n (n >= 1) and the 4 pixels, every
 * shift <= -2: qk_dsp_requant_pair's arithmetic with each channel's constants made once
 * for four pixels; 16 instructions per output, 11 without a clamp other than int8's. */
static QK_NOINLINE void qk_dsp_requant_quad(const int32_t *sums, int32_t n,
                                            const int32_t *multiplier,
                                            const int32_t *shift, const qanas_requant_t *rq,
                                            int32_t out_c, int8_t *out) {
  const int32_t *const end = sums + QK_DSP_QUAD * n;
  const int32_t zp = rq->output_zero_point, lo = rq->qmin, hi = rq->qmax;
  int32_t m, s, bit, half_m1, a, h;
  if (lo == -128 && hi == 127) {
    __asm__ volatile(QK_DSP_RQ_QUAD(QK_DSP_RQ_SSAT)
                     : QK_DSP_RQ_OUTPUTS(out)
                     : [oc] "r"(out_c), [zp] "r"(zp), [end] "m"(end)
                     : "cc", "memory");
    return;
  }
  __asm__ volatile(QK_DSP_RQ_QUAD(QK_DSP_RQ_CLAMP)
                   : QK_DSP_RQ_OUTPUTS(out)
                   : [oc] "r"(out_c), [zp] "r"(zp), [lo] "r"(lo), [hi] "r"(hi),
                     [end] "m"(end)
                   : "cc", "memory");
}
#endif

/* Output channels per pass of qk_dsp_quad_gemm (its int32 sums live on the stack). */
#define QK_DSP_QUAD_PASS 32

/* The 4-pixel GEMM: out[p * out_stride + o_first + j] = requant(bias[o_first + j] +
 * sum_i x_p[i] * w[j * len + i]) for j < rows and the pixels x_p = x + p * stride, split
 * in xq (qk_dsp_expand_quad). Per channel the 4-pixel dot product (qk_dsp_dot_quad over
 * the full words, then the tail word against the weights' last 4 bytes; a row shorter
 * than a word in C), QK_DSP_QUAD_PASS channels' sums at a time requantized by
 * qk_dsp_requant_quad. */
static void qk_dsp_quad_gemm(const int32_t *xq, const int8_t *x, int32_t stride,
                             int32_t len, const int8_t *w, int32_t rows,
                             const int32_t *bias, const qanas_requant_t *rq,
                             int32_t vector_rq, int32_t o_first, int32_t out_stride,
                             int8_t *out) {
  int32_t sums[QK_DSP_QUAD * QK_DSP_QUAD_PASS];
  const int32_t words = len >> 2, tail = qk_dsp_quad_words(len) > words;
  const int32_t scalar_end = tail ? 4 * words : len; /* a row shorter than a word */
  for (int32_t o0 = 0; o0 < rows; o0 += QK_DSP_QUAD_PASS) {
    const int32_t n = rows - o0 < QK_DSP_QUAD_PASS ? rows - o0 : QK_DSP_QUAD_PASS;
    const int32_t o1 = o_first + o0;
    for (int32_t j = 0; j < n; ++j) {
      const int8_t *wj = w + (o0 + j) * len;
      int32_t *acc = sums + QK_DSP_QUAD * j;
      acc[0] = acc[1] = acc[2] = acc[3] = bias[o1 + j];
      if (words != 0) {
        qk_dsp_dot_quad(xq, wj, words, acc);
      }
      for (int32_t i = 4 * words; i < scalar_end; ++i) {
        for (int32_t p = 0; p < QK_DSP_QUAD; ++p) {
          acc[p] += x[p * stride + i] * wj[i];
        }
      }
    }
    /* the tail words in a loop of their own: the loop above keeps its registers */
    for (int32_t j = 0; tail && j < n; ++j) {
      qk_dsp_dot_quad(xq + 2 * QK_DSP_QUAD * words, w + (o0 + j + 1) * len - 4, 1,
                      sums + QK_DSP_QUAD * j);
    }
#if QK_FULL_ASM
    if (vector_rq) {
      qk_dsp_requant_quad(sums, n, rq->multiplier + o1, rq->shift + o1, rq, out_stride,
                          out + o1);
      continue;
    }
#else
    (void)vector_rq;
#endif
    for (int32_t j = 0; j < n; ++j) { /* a shift > -2 somewhere (scales >= 0.25) */
      const int32_t o = o1 + j;
      for (int32_t p = 0; p < QK_DSP_QUAD; ++p) {
        out[p * out_stride + o] = (int8_t)qk_requantize(
            sums[QK_DSP_QUAD * j + p], rq->multiplier[o], rq->shift[o],
            rq->output_zero_point, rq->qmin, rq->qmax);
      }
    }
  }
}

/* Every output channel of 4 consecutive pixels x (in_c <= QK_DSP_QUAD_MAX_IN) into out
 * (4 rows of out_c): the input split once, then the 4-pixel GEMM. */
static QK_NOINLINE void qk_dsp_pointwise_quad(const int8_t *x, const int8_t *weights,
                                              int32_t in_c, int32_t out_c,
                                              const int32_t *bias, const qanas_requant_t *rq,
                                              int32_t vector_rq, int8_t *out) {
  int32_t xq[2 * QK_DSP_QUAD_MAX_IN];
  qk_dsp_expand_quad(x, in_c, in_c, xq);
  qk_dsp_quad_gemm(xq, x, in_c, in_c, weights, out_c, bias, rq, vector_rq, 0, out_c, out);
}

/* Every output channel of two pixels (x0, x1; out1 NULL for one): channel pairs of the
 * inlined 2 x 2 dot product write their sums (bias included) to the stack, and a second
 * loop requantizes QK_DSP_PASS channels at a time (a 2 x 2 block's requantization inline
 * reloaded the constants from the stack for every output). */
static QK_NOINLINE void qk_dsp_pointwise_pair(const int8_t *x0, const int8_t *x1,
                                              const int8_t *weights, int32_t in_c,
                                              int32_t out_c, const int32_t *bias,
                                              const qanas_requant_t *rq, int32_t vector_rq,
                                              int8_t *out0, int8_t *out1) {
  int32_t sums[2 * QK_DSP_PASS]; /* pixel-interleaved: sums[2 j + p] */
  for (int32_t o0 = 0; o0 < out_c; o0 += QK_DSP_PASS) {
    const int32_t n = out_c - o0 < QK_DSP_PASS ? out_c - o0 : QK_DSP_PASS;
    for (int32_t j = 0; j < n; j += 2) {
      const int32_t o = o0 + j, second = j + 1 < n; /* an odd last channel: row o twice */
      const int8_t *w0 = weights + o * in_c;
      int32_t acc[4] = {bias[o], bias[o + second], bias[o], bias[o + second]};
      qk_dsp_dot_2x2(x0, x1, w0, w0 + second * in_c, in_c, acc);
      sums[2 * j] = acc[0], sums[2 * j + 1] = acc[2];
      sums[2 * j + 2] = acc[1], sums[2 * j + 3] = acc[3];
    }
#if QK_FULL_ASM
    if (vector_rq && out1 != 0) {
      qk_dsp_requant_pair(sums, n, rq->multiplier + o0, rq->shift + o0, rq, out0 + o0,
                          out1 + o0);
      continue;
    }
#else
    (void)vector_rq;
#endif
    for (int32_t j = 0; j < n; ++j) { /* one pixel, or a shift > -2 (scales >= 0.25) */
      const int32_t o = o0 + j, m = rq->multiplier[o], sh = rq->shift[o];
      const int32_t zp = rq->output_zero_point, lo = rq->qmin, hi = rq->qmax;
      out0[o] = (int8_t)qk_requantize(sums[2 * j], m, sh, zp, lo, hi);
      if (out1 != 0) {
        out1[o] = (int8_t)qk_requantize(sums[2 * j + 1], m, sh, zp, lo, hi);
      }
    }
  }
}
#endif

#if defined(QK_ISA_AVX2) || defined(QK_ISA_NEON)
/* Every output channel of two pixels (x0, x1; out1 NULL for one), 4 channels at a time:
 * the dot products, the bias and the requantization stay in vector registers. */
static QK_NOINLINE void qk_simd_pointwise_pair(const int8_t *x0, const int8_t *x1,
                                               const int8_t *weights, int32_t in_c,
                                               int32_t out_c, const int32_t *bias,
                                               const qanas_requant_t *rq, int32_t vector_rq,
                                               int8_t *out0, int8_t *out1) {
  int32_t o = 0;
  if (vector_rq) {
    for (; o + QK_BLOCK_CH <= out_c; o += QK_BLOCK_CH) {
      qk_store_sums_2x4(qk_sums_2x4(x0, x1, weights + o * in_c, in_c, bias + o), rq, o,
                        out0, out1);
    }
  }
  for (; o < out_c; o += QK_BLOCK_CH) {
    const int32_t rows = out_c - o < QK_BLOCK_CH ? out_c - o : QK_BLOCK_CH;
    int32_t acc[QK_BLOCK_PX * QK_BLOCK_CH];
    qk_init_block(acc, bias, o, rows);
    qk_dot_block(x0, x1, weights + o * in_c, in_c, rows, in_c, acc);
    qk_store_block(acc, rq, o, rows, 0, out0, out1);
  }
}
#endif

qanas_status_t qanas_pointwise_conv_s8(int32_t pixels, int32_t in_c, int32_t out_c,
                                       const int8_t *input, const int8_t *weights,
                                       const int32_t *bias, const qanas_requant_t *rq,
                                       int8_t *output) {
  if (input == 0 || weights == 0 || bias == 0 || rq == 0 || output == 0 || pixels < 0 ||
      in_c <= 0 || out_c <= 0) {
    return QANAS_ERROR_BAD_ARGUMENT;
  }
  const int32_t vector_rq = qk_all_narrow_shifts(rq->shift, out_c);
#if defined(QK_ISA_MVE)
  for (int32_t p = 0; p < pixels; ++p) {
    qk_mve_gemm_pixel(input + p * in_c, weights, in_c, out_c, bias, rq, 0, vector_rq,
                      output + p * out_c);
  }
  return QANAS_OK;
#endif
  for (int32_t p = 0; p < pixels; p += QK_BLOCK_PX) {
    const int32_t two_pixels = QK_BLOCK_PX == 2 && p + 1 < pixels;
    const int8_t *x0 = input + p * in_c;
    const int8_t *x1 = two_pixels ? x0 + in_c : x0;
    int8_t *out0 = output + p * out_c;
    int8_t *out1 = two_pixels ? out0 + out_c : 0;
#if defined(QK_ISA_DSP)
    if (in_c <= QK_DSP_QUAD_MAX_IN && p + QK_DSP_QUAD <= pixels) {
      qk_dsp_pointwise_quad(x0, weights, in_c, out_c, bias, rq, vector_rq, out0);
      p += QK_DSP_QUAD - QK_BLOCK_PX; /* the loop adds the other QK_BLOCK_PX */
      continue;
    }
    qk_dsp_pointwise_pair(x0, x1, weights, in_c, out_c, bias, rq, vector_rq, out0, out1);
    continue;
#elif defined(QK_ISA_AVX2) || defined(QK_ISA_NEON)
    qk_simd_pointwise_pair(x0, x1, weights, in_c, out_c, bias, rq, vector_rq, out0, out1);
    continue;
#endif
    for (int32_t o = 0; o < out_c; o += QK_BLOCK_CH) {
      const int32_t rows = out_c - o < QK_BLOCK_CH ? out_c - o : QK_BLOCK_CH;
      int32_t acc[QK_BLOCK_PX * QK_BLOCK_CH];
      qk_init_block(acc, bias, o, rows);
      qk_dot_block(x0, x1, weights + o * in_c, in_c, rows, in_c, acc);
      qk_store_block(acc, rq, o, rows, vector_rq, out0, out1);
    }
  }
  return QANAS_OK;
}

/* Non-zero when every tap of the window at output (oy, ox) lies inside the input. */
static int32_t qk_window_inside(const qanas_conv_params_t *c, int32_t oy, int32_t ox) {
  const int32_t y0 = oy * c->stride_h - c->pad_top, x0 = ox * c->stride_w - c->pad_left;
  return y0 >= 0 && x0 >= 0 && y0 + (c->kernel_h - 1) * c->dilation_h < c->in_h &&
         x0 + (c->kernel_w - 1) * c->dilation_w < c->in_w;
}

static int32_t qk_conv_params_valid(const qanas_conv_params_t *c) {
  return c->in_h > 0 && c->in_w > 0 && c->in_c > 0 && c->out_h > 0 && c->out_w > 0 &&
         c->out_c > 0 && c->kernel_h > 0 && c->kernel_w > 0 && c->stride_h > 0 &&
         c->stride_w > 0 && c->dilation_h > 0 && c->dilation_w > 0 && c->pad_top >= 0 &&
         c->pad_left >= 0 && c->groups > 0 && c->in_c % c->groups == 0 &&
         c->out_c % c->groups == 0;
}

/* Bytes of one gathered window (kh * kw * in_c / groups): a stack buffer per block pixel.
 * Windows up to this size that cross the border, or whose rows are short runs (3-channel
 * stems), are gathered (padding filled with the input zero point) and then run as one
 * dot product; larger ones crossing the border take the per-tap path. */
#define QK_PATCH_MAX 576
/* Rows of at least this many bytes are long enough to stream in place. */
#define QK_LONG_RUN 32

/* dst[0 .. n) = src[0 .. n). */
QK_INLINE void qk_copy(int8_t *dst, const int8_t *src, int32_t n) {
#if defined(QK_ISA_MVE)
  for (int32_t i = 0; i < n; i += 16) {
    const mve_pred16_t p = vctp8q((uint32_t)(n - i));
    vstrbq_p_s8(dst + i, vldrbq_z_s8(src + i, p), p);
  }
#else
  int32_t i = 0;
  for (; i + 4 <= n; i += 4) {
    __builtin_memcpy(dst + i, src + i, 4); /* one word: LDR/STR (unaligned is fine) */
  }
  for (; i < n; ++i) {
    dst[i] = src[i];
  }
#endif
}

/* dst[0 .. n) = value. */
QK_INLINE void qk_fill(int8_t *dst, int8_t value, int32_t n) {
  for (int32_t i = 0; i < n; ++i) {
    dst[i] = value;
  }
}

/* Copies the window of output (oy, ox), group g, into `patch` in weight order (ky, kx,
 * channel), taps in the padding set to the input zero point. Ungrouped windows without
 * dilation along w copy each kernel row's in-bounds taps as one run. */
static void qk_gather_patch(const qanas_conv_params_t *c, const int8_t *input, int32_t g,
                            int32_t oy, int32_t ox, int8_t *patch) {
  const int32_t cin_g = c->in_c / c->groups;
  const int8_t zp = (int8_t)c->input_zero_point;
  const int32_t x0 = ox * c->stride_w - c->pad_left;
  const int32_t row_bytes = c->kernel_w * cin_g;
  for (int32_t ky = 0; ky < c->kernel_h; ++ky, patch += row_bytes) {
    const int32_t iy = oy * c->stride_h - c->pad_top + ky * c->dilation_h;
    if (iy < 0 || iy >= c->in_h) {
      qk_fill(patch, zp, row_bytes);
      continue;
    }
    const int8_t *row = input + iy * c->in_w * c->in_c + g * cin_g;
    if (c->groups == 1 && c->dilation_w == 1) {
      const int32_t kxa = x0 < 0 ? -x0 : 0;
      const int32_t kxb = x0 + c->kernel_w > c->in_w ? c->in_w - x0 : c->kernel_w;
      qk_fill(patch, zp, kxa * cin_g);
      if (kxb > kxa) {
        qk_copy(patch + kxa * cin_g, row + (x0 + kxa) * c->in_c, (kxb - kxa) * cin_g);
      }
      qk_fill(patch + kxb * cin_g, zp, (c->kernel_w - (kxb > kxa ? kxb : kxa)) * cin_g);
      continue;
    }
    for (int32_t kx = 0; kx < c->kernel_w; ++kx) {
      const int32_t ix = x0 + kx * c->dilation_w;
      if (ix >= 0 && ix < c->in_w) {
        qk_copy(patch + kx * cin_g, row + ix * c->in_c, cin_g);
      } else {
        qk_fill(patch + kx * cin_g, zp, cin_g);
      }
    }
  }
}

#if defined(QK_ISA_DSP)
/* Longest window (kernel_h * kernel_w * in_c / groups) of the DSP 4-pixel conv: 3 x 3 x 32
 * (its 4 gathered windows and their split copy take 3.4 KB of stack). */
#define QK_DSP_QUAD_MAX_WINDOW 288

/* Pixel p's 3 x 3 x 3 window split into xq as qk_dsp_expand_quad lays out its 27 bytes
 * (6 full words and the tail word), read from its three kernel rows r0, r1, r2 (9 bytes
 * each): the two words that straddle rows are put together from overlapping word reads,
 * so a window inside the input needs no gathered copy. Also reads r1[-1] and r2[-2 .. -1]
 * (inside the input when the window is, and inside a gathered window). */
static void qk_dsp_stem_split(const int8_t *r0, const int8_t *r1, const int8_t *r2,
                              int32_t p, int32_t *xq) {
  uint16_t r1_tail;
  __builtin_memcpy(&r1_tail, r1 + 7, sizeof(r1_tail));
  const uint32_t straddle0 = ((uint32_t)qk_read_word(r1 - 1) & 0xffffff00u) | (uint8_t)r0[8];
  const uint32_t straddle1 = ((uint32_t)qk_read_word(r2 - 2) & 0xffff0000u) | r1_tail;
  const int32_t words[7] = {qk_read_word(r0), qk_read_word(r0 + 4), (int32_t)straddle0,
                            qk_read_word(r1 + 3), (int32_t)straddle1, qk_read_word(r2 + 2),
                            (int32_t)((uint32_t)qk_read_word(r2 + 5) & 0xffffff00u)};
  for (int32_t i = 0; i < 7; ++i) {
    qk_dsp_split(words[i], p, xq + 2 * QK_DSP_QUAD * i);
  }
}

/* Output pixels (oy, ox .. ox + 3) of a DSP conv2d, every group: each pixel's window
 * gathered (qk_gather_patch: padding = input zero point), the four split once, then the
 * 4-pixel GEMM against the group's OHWI rows. A 3 x 3 stem on 3 channels splits its inside
 * windows straight from the input (qk_dsp_stem_split), a strided 1 x 1 conv its pixels. */
static QK_NOINLINE void qk_dsp_conv_quad(const qanas_conv_params_t *c, const int8_t *input,
                                         const int8_t *weights, const int32_t *bias,
                                         const qanas_requant_t *rq, int32_t vector_rq,
                                         int32_t oy, int32_t ox, int8_t *out) {
  const int32_t cin_g = c->in_c / c->groups, cout_g = c->out_c / c->groups;
  const int32_t wsize = c->kernel_h * c->kernel_w * cin_g;
  int8_t patch[QK_DSP_QUAD * QK_DSP_QUAD_MAX_WINDOW];
  int32_t xq[2 * QK_DSP_QUAD_MAX_WINDOW];
  if (c->groups == 1 && c->in_c == 3 && c->kernel_h == 3 && c->kernel_w == 3 &&
      c->dilation_h == 1 && c->dilation_w == 1) {
    const int32_t row = c->in_w * 3;
    for (int32_t p = 0; p < QK_DSP_QUAD; ++p) {
      const int8_t *r0 = patch + p * QK_DSP_QUAD_MAX_WINDOW;
      int32_t step = 9;
      if (qk_window_inside(c, oy, ox + p)) {
        r0 = input + (oy * c->stride_h - c->pad_top) * row +
             ((ox + p) * c->stride_w - c->pad_left) * 3;
        step = row;
      } else {
        qk_gather_patch(c, input, 0, oy, ox + p, patch + p * QK_DSP_QUAD_MAX_WINDOW);
      }
      qk_dsp_stem_split(r0, r0 + step, r0 + 2 * step, p, xq);
    }
    qk_dsp_quad_gemm(xq, patch, QK_DSP_QUAD_MAX_WINDOW, wsize, weights, c->out_c, bias, rq,
                     vector_rq, 0, c->out_c, out);
    return;
  }
  if (c->groups == 1 && c->kernel_h == 1 && c->kernel_w == 1 && qk_window_inside(c, oy, ox) &&
      qk_window_inside(c, oy, ox + QK_DSP_QUAD - 1)) { /* a strided 1 x 1: pixels in place */
    const int32_t step = c->stride_w * c->in_c;
    const int8_t *x = input + ((oy * c->stride_h - c->pad_top) * c->in_w +
                               ox * c->stride_w - c->pad_left) * c->in_c;
    qk_dsp_expand_quad(x, step, wsize, xq);
    qk_dsp_quad_gemm(xq, x, step, wsize, weights, c->out_c, bias, rq, vector_rq, 0, c->out_c,
                     out);
    return;
  }
  for (int32_t g = 0; g < c->groups; ++g) {
    for (int32_t p = 0; p < QK_DSP_QUAD; ++p) {
      qk_gather_patch(c, input, g, oy, ox + p, patch + p * QK_DSP_QUAD_MAX_WINDOW);
    }
    qk_dsp_expand_quad(patch, QK_DSP_QUAD_MAX_WINDOW, wsize, xq);
    qk_dsp_quad_gemm(xq, patch, QK_DSP_QUAD_MAX_WINDOW, wsize, weights + g * cout_g * wsize,
                     cout_g, bias, rq, vector_rq, g * cout_g, c->out_c, out);
  }
}
#endif

#if defined(QK_ISA_MVE)
/* Bytes of a gathered window on Helium (3 x 3 x 256); larger windows take the per-element
 * path (correct, not fast). */
#define QK_MVE_PATCH_MAX 2304

/* Helium conv2d: every window is gathered (zero-point padding, a few vector copies) and
 * runs as one GEMM row against the group's interleaved weights. */
static qanas_status_t qk_mve_conv2d(const qanas_conv_params_t *c, const int8_t *input,
                                    const int8_t *weights, const int32_t *bias,
                                    const qanas_requant_t *rq, int32_t vector_rq,
                                    int8_t *output) {
  const int32_t cin_g = c->in_c / c->groups, cout_g = c->out_c / c->groups;
  const int32_t k = c->kernel_h * c->kernel_w * cin_g;
  const int32_t kp = (k + QK_MVE_CHUNK - 1) & ~(QK_MVE_CHUNK - 1);
  const int32_t group_bytes = ((cout_g + QK_MVE_ROWS - 1) / QK_MVE_ROWS) * QK_MVE_ROWS * kp;
  /* Ungrouped, undilated along w: an inside window is kernel_h runs of kernel_w * in_c
   * bytes, copied without the general gather's bookkeeping. */
  const int32_t runs = c->groups == 1 && c->dilation_w == 1 && k <= QK_MVE_PATCH_MAX;
  const int32_t run = c->kernel_w * c->in_c, row_step = c->dilation_h * c->in_w * c->in_c;
  int8_t patch[QK_MVE_PATCH_MAX];
  for (int32_t oy = 0; oy < c->out_h; ++oy) {
    for (int32_t ox = 0; ox < c->out_w; ++ox) {
      int8_t *out = output + (oy * c->out_w + ox) * c->out_c;
      if (runs && qk_window_inside(c, oy, ox)) {
        const int8_t *x = input + ((oy * c->stride_h - c->pad_top) * c->in_w +
                                   (ox * c->stride_w - c->pad_left)) * c->in_c;
        for (int32_t ky = 0; ky < c->kernel_h; ++ky) {
          qk_copy(patch + ky * run, x + ky * row_step, run);
        }
        qk_mve_gemm_pixel(patch, weights, k, cout_g, bias, rq, 0, vector_rq, out);
        continue;
      }
      for (int32_t g = 0; g < c->groups; ++g) {
        const int8_t *wg = weights + g * group_bytes;
        if (k <= QK_MVE_PATCH_MAX) {
          qk_gather_patch(c, input, g, oy, ox, patch);
          qk_mve_gemm_pixel(patch, wg, k, cout_g, bias, rq, g * cout_g, vector_rq, out);
          continue;
        }
        for (int32_t j = 0; j < cout_g; ++j) {
          int32_t acc = bias[g * cout_g + j];
          for (int32_t ky = 0; ky < c->kernel_h; ++ky) {
            const int32_t iy = oy * c->stride_h - c->pad_top + ky * c->dilation_h;
            for (int32_t kx = 0; kx < c->kernel_w; ++kx) {
              const int32_t ix = ox * c->stride_w - c->pad_left + kx * c->dilation_w;
              const int32_t in = iy >= 0 && iy < c->in_h && ix >= 0 && ix < c->in_w;
              const int8_t *x = in ? input + (iy * c->in_w + ix) * c->in_c + g * cin_g : input;
              for (int32_t i = 0; i < cin_g; ++i) {
                const int32_t t = (ky * c->kernel_w + kx) * cin_g + i;
                acc += qk_mve_weight(wg, k, j, t) * (in ? x[i] : c->input_zero_point);
              }
            }
          }
          const int32_t o = g * cout_g + j;
          out[o] = (int8_t)qk_requantize(acc, rq->multiplier[o], rq->shift[o],
                                         rq->output_zero_point, rq->qmin, rq->qmax);
        }
      }
    }
  }
  return QANAS_OK;
}
#endif

#if !defined(QK_ISA_MVE)
/* Accumulates two output pixels (both windows inside the input) for `rows` channels
 * from weight row w0: per kernel row one contiguous run when the row's taps are adjacent
 * (ungrouped, no dilation along w), else one run of in_c / groups per tap. */
static void qk_conv_interior(const qanas_conv_params_t *c, const int8_t *x0, const int8_t *x1,
                             const int8_t *w0, int32_t w_stride, int32_t rows, int32_t *acc) {
  const int32_t cin_g = c->in_c / c->groups;
  const int32_t row = c->in_w * c->in_c;
  if (c->groups == 1 && c->dilation_w == 1) {
    const int32_t run = c->kernel_w * c->in_c;
    for (int32_t ky = 0; ky < c->kernel_h; ++ky) {
      const int32_t dy = ky * c->dilation_h * row;
      qk_dot_block(x0 + dy, x1 + dy, w0 + ky * run, w_stride, rows, run, acc);
    }
    return;
  }
  for (int32_t ky = 0; ky < c->kernel_h; ++ky) {
    for (int32_t kx = 0; kx < c->kernel_w; ++kx) {
      const int32_t d = ky * c->dilation_h * row + kx * c->dilation_w * c->in_c;
      const int32_t t = (ky * c->kernel_w + kx) * cin_g;
      qk_dot_block(x0 + d, x1 + d, w0 + t, w_stride, rows, cin_g, acc);
    }
  }
}

/* One output pixel whose window crosses the border (accumulators acc[0 .. rows)): taps
 * in the padding read the input zero point (the bias has -zero_point * sum(w) folded
 * in, so they add zero_point * w). */
static void qk_conv_border(const qanas_conv_params_t *c, const int8_t *x_group, int32_t oy,
                           int32_t ox, const int8_t *w0, int32_t w_stride, int32_t rows,
                           int32_t *acc) {
  const int32_t cin_g = c->in_c / c->groups;
  for (int32_t ky = 0; ky < c->kernel_h; ++ky) {
    const int32_t iy = oy * c->stride_h - c->pad_top + ky * c->dilation_h;
    for (int32_t kx = 0; kx < c->kernel_w; ++kx) {
      const int32_t ix = ox * c->stride_w - c->pad_left + kx * c->dilation_w;
      const int32_t t = (ky * c->kernel_w + kx) * cin_g;
      if (iy >= 0 && iy < c->in_h && ix >= 0 && ix < c->in_w) {
        const int8_t *x = x_group + (iy * c->in_w + ix) * c->in_c;
        qk_dot_block(x, x, w0 + t, w_stride, rows, cin_g, acc);
        continue;
      }
      for (int32_t j = 0; j < rows; ++j) {
        int32_t sum = 0;
        for (int32_t i = 0; i < cin_g; ++i) {
          sum += w0[j * w_stride + t + i];
        }
        acc[j] += c->input_zero_point * sum;
      }
    }
  }
}

/* Output pixels (oy, ox) and, when it exists, (oy, ox + 1) of a conv2d, every group, as
 * blocks of QK_BLOCK_CH channels: a gathered window (short runs or the border, up to
 * QK_PATCH_MAX bytes), the window read in place, or the per-tap border path. Its own
 * function, so that its window buffers and the 4-pixel block's are not on the stack at
 * the same time. */
static QK_NOINLINE void qk_conv_pair(const qanas_conv_params_t *c, const int8_t *input,
                                     const int8_t *weights, const int32_t *bias,
                                     const qanas_requant_t *rq, int32_t vector_rq,
                                     int32_t oy, int32_t ox, int8_t *output) {
  const int32_t cin_g = c->in_c / c->groups, cout_g = c->out_c / c->groups;
  const int32_t wsize = c->kernel_h * c->kernel_w * cin_g;
  const int32_t fits = wsize <= QK_PATCH_MAX;
  const int32_t short_runs = fits && (c->groups > 1 || c->dilation_w > 1 ||
                                      c->kernel_w * c->in_c < QK_LONG_RUN);
  int8_t patch[QK_BLOCK_PX][QK_PATCH_MAX];
  const int32_t two = QK_BLOCK_PX == 2 && ox + 1 < c->out_w;
  const int32_t inside = qk_window_inside(c, oy, ox) &&
                         (!two || qk_window_inside(c, oy, ox + 1));
  const int32_t gather = fits && (short_runs || !inside);
  int8_t *out0 = output + (oy * c->out_w + ox) * c->out_c;
  int8_t *out1 = two ? out0 + c->out_c : 0;
  const int8_t *x0 = inside ? input + ((oy * c->stride_h - c->pad_top) * c->in_w +
                                       (ox * c->stride_w - c->pad_left)) * c->in_c
                            : input;
  const int8_t *x1 = two ? x0 + c->stride_w * c->in_c : x0;
  for (int32_t g = 0; g < c->groups; ++g) {
    if (gather) {
      qk_gather_patch(c, input, g, oy, ox, patch[0]);
      if (two) {
        qk_gather_patch(c, input, g, oy, ox + 1, patch[QK_BLOCK_PX - 1]);
      }
    }
    for (int32_t j = 0; j < cout_g; j += QK_BLOCK_CH) {
      const int32_t o = g * cout_g + j;
      const int32_t rows = cout_g - j < QK_BLOCK_CH ? cout_g - j : QK_BLOCK_CH;
      const int8_t *w0 = weights + o * wsize;
      int32_t acc[QK_BLOCK_PX * QK_BLOCK_CH];
      if (gather) {
        qk_init_block(acc, bias, o, rows);
        qk_dot_block(patch[0], patch[two ? QK_BLOCK_PX - 1 : 0], w0, wsize, rows, wsize,
                     acc);
        qk_store_block(acc, rq, o, rows, vector_rq, out0, out1);
      } else if (inside) {
        qk_init_block(acc, bias, o, rows);
        qk_conv_interior(c, x0 + g * cin_g, x1 + g * cin_g, w0, wsize, rows, acc);
        qk_store_block(acc, rq, o, rows, vector_rq, out0, out1);
      } else {
        for (int32_t k = 0; k < 1 + two; ++k) {
          qk_init_block(acc, bias, o, rows);
          qk_conv_border(c, input + g * cin_g, oy, ox + k, w0, wsize, rows, acc);
          qk_store_block(acc, rq, o, rows, vector_rq, k == 0 ? out0 : out1, 0);
        }
      }
    }
  }
}
#endif

qanas_status_t qanas_conv2d_s8(const qanas_conv_params_t *c, const int8_t *input,
                               const int8_t *weights, const int32_t *bias,
                               const qanas_requant_t *rq, int8_t *output) {
  if (c == 0 || input == 0 || weights == 0 || bias == 0 || rq == 0 || output == 0 ||
      !qk_conv_params_valid(c)) {
    return QANAS_ERROR_BAD_ARGUMENT;
  }
  if (c->kernel_h == 1 && c->kernel_w == 1 && c->stride_h == 1 && c->stride_w == 1 &&
      c->pad_top == 0 && c->pad_left == 0 && c->groups == 1 && c->out_h == c->in_h &&
      c->out_w == c->in_w) {
    return qanas_pointwise_conv_s8(c->in_h * c->in_w, c->in_c, c->out_c, input, weights,
                                   bias, rq, output);
  }
  const int32_t vector_rq = qk_all_narrow_shifts(rq->shift, c->out_c);
#if defined(QK_ISA_MVE)
  return qk_mve_conv2d(c, input, weights, bias, rq, vector_rq, output);
#else
  for (int32_t oy = 0; oy < c->out_h; ++oy) {
    for (int32_t ox = 0; ox < c->out_w; ox += QK_BLOCK_PX) {
#if defined(QK_ISA_DSP)
      const int32_t wsize = c->kernel_h * c->kernel_w * (c->in_c / c->groups);
      if (wsize <= QK_DSP_QUAD_MAX_WINDOW && ox + QK_DSP_QUAD <= c->out_w) {
        qk_dsp_conv_quad(c, input, weights, bias, rq, vector_rq, oy, ox,
                         output + (oy * c->out_w + ox) * c->out_c);
        ox += QK_DSP_QUAD - QK_BLOCK_PX; /* the loop adds the other QK_BLOCK_PX */
        continue;
      }
#endif
      qk_conv_pair(c, input, weights, bias, rq, vector_rq, oy, ox, output);
    }
  }
  return QANAS_OK;
#endif
}
