/* Int8 resize (nearest and bilinear) over NHWC, from the compiler's exact source tables.
 *
 * Bilinear is separable and exact: per output row, the vertical pass combines the two
 * source rows of a block of channels into int32 (zero point folded in), and the
 * horizontal pass combines two columns of that into each output's accumulator,
 *   acc = sum_a sum_b (x[r_a][c_b] - zp) * W_a * V_b,
 * the integer the NumPy reference requantizes. The accumulators of a run of outputs go
 * to a stack buffer, then one loop requantizes the run with the tensor's one multiplier
 * (Arm DSP: inline assembly, 13 instructions per output; Helium: 4 lanes). An output row
 * whose source taps equal the previous row's (the clamped rows at the borders of a
 * half-pixel upsample) is a copy of it. */
#include <stddef.h>

#include "qk_internal.h"

/* int32 words of the vertical pass's row (in_w x channel block) and of the accumulators
 * of a run of outputs: 2 KB and 512 bytes of stack. */
#define QK_RESIZE_ROW QANAS_RESIZE_MAX_IN_W
#define QK_RESIZE_RUN 128

#if !defined(QANAS_KERNELS_PORTABLE) && defined(__ARM_FEATURE_DSP) && !defined(__aarch64__)
#define QK_RESIZE_DSP 1
#endif

/* out[k * step] = requant(acc[k]) for k < n, the params' one multiplier. */
static QK_NOINLINE void qk_resize_requant_run(const qanas_resize_params_t *p,
                                              const int32_t *acc, int32_t n, int32_t step,
                                              int8_t *out) {
  const int32_t m = p->multiplier, shift = p->shift, zp = p->output_zero_point;
  int32_t k = 0;
  if (step == 1 && shift <= -2 && p->qmin == -128 && p->qmax == 127) {
#if defined(QK_ISA_MVE)
    const int32x4_t vm = vdupq_n_s32(m), vs = vdupq_n_s32(shift);
    for (; k < n; k += 4) {
      const mve_pred16_t pred = vctp32q((uint32_t)(n - k));
      const int32x4_t q = qk_mve_requantize(vldrwq_z_s32(acc + k, pred), vm, vs, zp, -128,
                                            127);
      vstrbq_p_s32(out + k, q, pred);
    }
    return;
#elif defined(QK_RESIZE_DSP)
    /* qk_dsp_requant_pair's rounding (qk_conv.c has the arithmetic), one constant set. */
    const int32_t s = -shift - 1, bit = 1 << s, half_m1 = (bit >> 1) - 1;
    const int32_t *end = acc + n;
    int32_t a, h;
    if (n > 0) {
      __asm__ volatile("1:\n\t"
                       "ldr %[a], [%[ps]], #4\n\t"
                       "smull %[a], %[h], %[a], %[m]\n\t"
                       "tst %[h], %[bit]\n\t"
                       "it ne\n\t"
                       "movne %[a], #1\n\t"
                       "cmp %[a], #1\n\t"
                       "adc %[h], %[h], %[half_m1]\n\t"
                       "asr %[h], %[h], %[s]\n\t"
                       "add %[h], %[h], %[zp]\n\t"
                       "ssat %[h], #8, %[h]\n\t"
                       "strb %[h], [%[po]], #1\n\t"
                       "cmp %[ps], %[end]\n\t"
                       "bne 1b\n\t"
                       : [ps] "+r"(acc), [po] "+r"(out), [a] "=&r"(a), [h] "=&r"(h)
                       : [m] "r"(m), [bit] "r"(bit), [half_m1] "r"(half_m1), [s] "r"(s),
                         [zp] "r"(zp), [end] "r"(end)
                       : "cc", "memory");
    }
    return;
#endif
  }
  for (; k < n; ++k) {
    out[k * step] = (int8_t)qk_requantize(acc[k], m, shift, zp, p->qmin, p->qmax);
  }
}

/* Where output (y, x), channel c lives: NHWC, or NCHW with `out_nchw`. */
QK_INLINE int8_t *qk_resize_out(const qanas_resize_params_t *p, int8_t *output, int32_t y,
                                int32_t x, int32_t c) {
  return p->out_nchw ? output + (c * p->out_h + y) * p->out_w + x
                     : output + (y * p->out_w + x) * p->channels + c;
}

/* Output row y, channels [c0, c0 + cb), copied from row `from`. */
static void qk_resize_copy_row(const qanas_resize_params_t *p, int8_t *output, int32_t from,
                               int32_t y, int32_t c0, int32_t cb) {
  if (p->out_nchw) {
    for (int32_t c = c0; c < c0 + cb; ++c) {
      __builtin_memcpy(qk_resize_out(p, output, y, 0, c), qk_resize_out(p, output, from, 0, c),
                       (size_t)p->out_w);
    }
    return;
  }
  if (cb == p->channels) {
    __builtin_memcpy(qk_resize_out(p, output, y, 0, 0), qk_resize_out(p, output, from, 0, 0),
                     (size_t)(p->out_w * cb));
    return;
  }
  for (int32_t x = 0; x < p->out_w; ++x) {
    __builtin_memcpy(qk_resize_out(p, output, y, x, c0), qk_resize_out(p, output, from, x, c0),
                     (size_t)cb);
  }
}

/* Requantizes the accumulators of outputs (y, x0 .. x0 + px), channels [c0, c0 + cb):
 * `acc` is pixel-major ([px][cb]) for NHWC, channel-major ([cb][px]) for NCHW. */
static void qk_resize_store(const qanas_resize_params_t *p, const int32_t *acc, int32_t y,
                            int32_t x0, int32_t px, int32_t c0, int32_t cb, int8_t *output) {
  if (p->out_nchw) {
    for (int32_t c = 0; c < cb; ++c) {
      qk_resize_requant_run(p, acc + c * px, px, 1, qk_resize_out(p, output, y, x0, c0 + c));
    }
  } else if (cb == p->channels) {
    qk_resize_requant_run(p, acc, px * cb, 1, qk_resize_out(p, output, y, x0, 0));
  } else {
    for (int32_t x = 0; x < px; ++x) {
      qk_resize_requant_run(p, acc + x * cb, cb, 1, qk_resize_out(p, output, y, x0 + x, c0));
    }
  }
}

/* Bilinear output row y for channels [c0, c0 + cb): the vertical row `v` ([in_w][cb],
 * already combined), then the horizontal pass in runs of QK_RESIZE_RUN accumulators. */
static void qk_resize_bilinear_row(const qanas_resize_params_t *p, const int32_t *cols,
                                   const int32_t *v, int32_t y, int32_t c0, int32_t cb,
                                   int8_t *output) {
  const int32_t ow = p->out_w, run = QK_RESIZE_RUN / cb;
  int32_t acc[QK_RESIZE_RUN];
  for (int32_t x0 = 0; x0 < ow; x0 += run) {
    const int32_t px = ow - x0 < run ? ow - x0 : run;
    /* NHWC: acc[x * cb + c]; NCHW: acc[c * px + x] */
    const int32_t x_step = p->out_nchw ? 1 : cb, c_step = p->out_nchw ? px : 1;
    for (int32_t x = 0; x < px; ++x) {
      const int32_t j = x0 + x;
      const int32_t *a = v + cols[j] * cb, *b = v + cols[ow + j] * cb;
      const int32_t wa = cols[2 * ow + j], wb = cols[3 * ow + j];
      int32_t *dst = acc + x * x_step;
      for (int32_t c = 0; c < cb; ++c) {
        dst[c * c_step] = a[c] * wa + b[c] * wb;
      }
    }
    qk_resize_store(p, acc, y, x0, px, c0, cb, output);
  }
}

static void qk_resize_bilinear(const qanas_resize_params_t *p, const int32_t *rows,
                               const int32_t *cols, const int8_t *input, int8_t *output) {
  const int32_t oh = p->out_h, iw = p->in_w, ch = p->channels;
  const int32_t fit = QK_RESIZE_ROW / iw < QK_RESIZE_RUN ? QK_RESIZE_ROW / iw : QK_RESIZE_RUN;
  const int32_t cb = ch < fit ? ch : fit;
  int32_t v[QK_RESIZE_ROW];
  for (int32_t c0 = 0; c0 < ch; c0 += cb) {
    const int32_t n = ch - c0 < cb ? ch - c0 : cb;
    for (int32_t y = 0; y < oh; ++y) {
      const int32_t ra = rows[y], rb = rows[oh + y], wa = rows[2 * oh + y],
                    wb = rows[3 * oh + y];
      if (y > 0 && ra == rows[y - 1] && rb == rows[oh + y - 1] && wa == rows[2 * oh + y - 1] &&
          wb == rows[3 * oh + y - 1]) {
        qk_resize_copy_row(p, output, y - 1, y, c0, n);
        continue;
      }
      const int32_t zp = p->input_zero_point * (wa + wb);
      const int8_t *xa = input + ra * iw * ch + c0, *xb = input + rb * iw * ch + c0;
      for (int32_t q = 0; q < iw; ++q) {
        for (int32_t c = 0; c < n; ++c) {
          v[q * n + c] = xa[q * ch + c] * wa + xb[q * ch + c] * wb - zp;
        }
      }
      qk_resize_bilinear_row(p, cols, v, y, c0, n, output);
    }
  }
}

static void qk_resize_nearest(const qanas_resize_params_t *p, const int32_t *rows,
                              const int32_t *cols, const int8_t *input, int8_t *output) {
  const int32_t ch = p->channels, ow = p->out_w;
  const int32_t cb = ch < QK_RESIZE_RUN ? ch : QK_RESIZE_RUN;
  int32_t acc[QK_RESIZE_RUN];
  for (int32_t y = 0; y < p->out_h; ++y) {
    if (y > 0 && rows[y] == rows[y - 1]) {
      qk_resize_copy_row(p, output, y - 1, y, 0, ch);
      continue;
    }
    const int8_t *row = input + rows[y] * p->in_w * ch;
    for (int32_t x = 0; x < ow; ++x) {
      const int8_t *src = row + cols[x] * ch;
      for (int32_t c0 = 0; c0 < ch; c0 += cb) {
        const int32_t n = ch - c0 < cb ? ch - c0 : cb;
        if (!p->rescale && !p->out_nchw) {
          __builtin_memcpy(qk_resize_out(p, output, y, x, c0), src + c0, (size_t)n);
          continue;
        }
        for (int32_t c = 0; c < n; ++c) {
          acc[c] = src[c0 + c] - p->input_zero_point;
        }
        if (p->rescale) {
          qk_resize_requant_run(p, acc, n, p->out_nchw ? p->out_h * ow : 1,
                                qk_resize_out(p, output, y, x, c0));
          continue;
        }
        for (int32_t c = 0; c < n; ++c) {
          *qk_resize_out(p, output, y, x, c0 + c) = src[c0 + c];
        }
      }
    }
  }
}

qanas_status_t qanas_resize_s8(const qanas_resize_params_t *p, const int32_t *rows,
                               const int32_t *cols, const int8_t *input, int8_t *output) {
  if (p == 0 || rows == 0 || cols == 0 || input == 0 || output == 0 || p->in_h <= 0 ||
      p->in_w <= 0 || p->channels <= 0 || p->out_h <= 0 || p->out_w <= 0 ||
      (p->method != QANAS_RESIZE_NEAREST && p->method != QANAS_RESIZE_BILINEAR) ||
      (p->method == QANAS_RESIZE_BILINEAR && p->in_w > QANAS_RESIZE_MAX_IN_W)) {
    return QANAS_ERROR_BAD_ARGUMENT;
  }
  if (p->method == QANAS_RESIZE_BILINEAR) {
    qk_resize_bilinear(p, rows, cols, input, output);
  } else {
    qk_resize_nearest(p, rows, cols, input, output);
  }
  return QANAS_OK;
}
