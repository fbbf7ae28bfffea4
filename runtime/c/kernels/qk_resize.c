/* Int8 resize (nearest and bilinear) over NHWC, from the compiler's exact source tables.
 *
 * Bilinear is separable and exact. The output is made in column bands of at most
 * QK_RESIZE_BAND int32 values (band width x channel block): the horizontal pass combines
 * two columns of a source row into a band row h[x][c] = sum_b (x[q_b][c] - zp) V_b (int32,
 * the zero point folded in), computed once per source row into a two-row cache, and each
 * output row of the band is then one flat run of
 *   acc = h_a[k] W_a + h_b[k] W_b  (= sum_a sum_b (x - zp) W_a V_b, the reference's integer)
 * requantized on the fly (qk_resize_lerp_run: Arm DSP inline assembly, 12 instructions per
 * output; Helium 4 lanes). An output row whose source taps equal the previous row's (the
 * clamped rows at the borders of a half-pixel upsample) is a copy of it.
 *
 * Requantization without ties: round_half_even(acc m / 2^n) (n = 31 - shift = 32 + s) has a
 * tie only when acc m = 2^(n-1) (mod 2^n), i.e. when v2(acc) + v2(m) = n - 1 = 31 + s. A
 * non-zero accumulator has v2(acc) <= log2|acc| <= log2 B, B the largest |acc| the tables
 * allow (acc = 0 gives 0, no tie), so when v2(m) + floor(log2 B) < 31 + s no tie exists
 * and the result is round half up, floor((acc m + 2^(n-1)) / 2^n) = (hi(acc m) + 2^(s-1))
 * >> s with hi the high word of the product (floor divisions compose): one SMMUL, one
 * add, one shift. B is small (255 D_h D_w for bilinear, 255 for nearest), so only a
 * multiplier with about 31 + s - log2 B trailing zeros (a power-of-two scale, where ties
 * do occur) takes the exact formula (qk_requantize); the bound on v2(acc) alone (31)
 * sent every multiplier with s or more trailing zeros there, one in 2^s of them. */
#include <stddef.h>

#include "qk_internal.h"

/* int32 values of one band row (band width x channel block): two cached source rows, 2 KB
 * of stack. */
#define QK_RESIZE_BAND 256

#if !defined(QANAS_KERNELS_PORTABLE) && defined(__ARM_FEATURE_DSP) && !defined(__aarch64__)
#define QK_RESIZE_DSP 1
#endif

/* The tensor's one requantization, with the constants of the tie-free form. */
typedef struct {
  int32_t multiplier, shift, zero_point, qmin, qmax;
  int32_t s, half; /* s = -shift - 1, half = 2^(s-1) */
  int32_t no_ties; /* shift <= -2 and v2(multiplier) + floor(log2 B) < 31 + s */
} qk_resize_rq_t;

/* floor(log2 B), B the largest |acc| of the call: max |x - zp| over int8 x, times the
 * axes' denominators D_h D_w for bilinear (w0 + w1, the same in every row and column of
 * an axis: the first one's). */
static int32_t qk_resize_acc_log2(const qanas_resize_params_t *p, const int32_t *rows,
                                  const int32_t *cols) {
  const int64_t zp = p->input_zero_point;
  int64_t bound = 127 - zp > zp + 128 ? 127 - zp : zp + 128;
  if (p->method == QANAS_RESIZE_BILINEAR) {
    bound *= (int64_t)(rows[2 * p->out_h] + rows[3 * p->out_h]) *
             (cols[2 * p->out_w] + cols[3 * p->out_w]);
  }
  return bound > 0 ? 63 - __builtin_clzll((uint64_t)bound) : 0;
}

static void qk_resize_rq_init(const qanas_resize_params_t *p, const int32_t *rows,
                              const int32_t *cols, qk_resize_rq_t *rq) {
  rq->multiplier = p->multiplier, rq->shift = p->shift, rq->zero_point = p->output_zero_point;
  rq->qmin = p->qmin, rq->qmax = p->qmax;
  rq->s = -p->shift - 1;
  rq->half = rq->s >= 1 ? 1 << (rq->s - 1) : 0;
  rq->no_ties = p->shift <= -2 &&
                (p->multiplier == 0 || __builtin_ctz((uint32_t)p->multiplier) +
                                               qk_resize_acc_log2(p, rows, cols) < 31 + rq->s);
}

/* out[k] = requant(a[k] * wa + b[k] * wb) for k < n (n >= 1). */
static QK_NOINLINE void qk_resize_lerp_run(const int32_t *a, const int32_t *b, int32_t wa,
                                           int32_t wb, int32_t n, const qk_resize_rq_t *rq,
                                           int8_t *out) {
  const int32_t m = rq->multiplier, s = rq->s, half = rq->half, zp = rq->zero_point;
  int32_t k = 0;
#if defined(QK_ISA_MVE)
  if (rq->no_ties) {
    const int32x4_t neg_s = vdupq_n_s32(-s);
    for (; k < n; k += 4) {
      const mve_pred16_t pred = vctp32q((uint32_t)(n - k));
      const int32x4_t acc = vmlaq_n_s32(vmulq_n_s32(vldrwq_z_s32(a + k, pred), wa),
                                        vldrwq_z_s32(b + k, pred), wb);
      /* VRSHL by -s: (hi + 2^(s-1)) >> s exactly */
      int32x4_t q = vaddq_n_s32(vrshlq_s32(vmulhq_s32(acc, vdupq_n_s32(m)), neg_s), zp);
      q = vminq_s32(vmaxq_s32(q, vdupq_n_s32(rq->qmin)), vdupq_n_s32(rq->qmax));
      vstrbq_p_s32(out + k, q, pred);
    }
    return;
  }
#elif defined(QK_RESIZE_DSP) && QK_FULL_ASM
  if (rq->no_ties && rq->qmin == -128 && rq->qmax == 127) {
    const int8_t *end = out + n;
    int32_t x, y;
    __asm__ volatile("1:\n\t"
                     "ldr %[x], [%[pa]], #4\n\t"
                     "ldr %[y], [%[pb]], #4\n\t"
                     "mul %[x], %[x], %[wa]\n\t"
                     "mla %[x], %[y], %[wb], %[x]\n\t"
                     "smmul %[x], %[x], %[m]\n\t"
                     "add %[x], %[x], %[half]\n\t"
                     "asr %[x], %[x], %[s]\n\t"
                     "add %[x], %[x], %[zp]\n\t"
                     "ssat %[x], #8, %[x]\n\t"
                     "strb %[x], [%[po]], #1\n\t"
                     "cmp %[po], %[end]\n\t"
                     "bne 1b\n\t"
                     : [pa] "+r"(a), [pb] "+r"(b), [po] "+r"(out), [x] "=&r"(x), [y] "=&r"(y)
                     : [wa] "r"(wa), [wb] "r"(wb), [m] "r"(m), [half] "r"(half), [s] "r"(s),
                       [zp] "r"(zp), [end] "r"(end)
                     : "cc", "memory");
    return;
  }
#endif
  for (; k < n; ++k) {
    const int32_t acc = a[k] * wa + b[k] * wb;
    int32_t q;
    if (rq->no_ties) {
      q = (((int32_t)(((int64_t)acc * m) >> 32) + half) >> s) + zp;
      q = q < rq->qmin ? rq->qmin : q > rq->qmax ? rq->qmax : q;
    } else {
      q = qk_requantize(acc, m, rq->shift, zp, rq->qmin, rq->qmax);
    }
    out[k] = (int8_t)q;
  }
}

/* Where output (y, x), channel c lives: NHWC, or NCHW with `out_nchw`. */
QK_INLINE int8_t *qk_resize_out(const qanas_resize_params_t *p, int8_t *output, int32_t y,
                                int32_t x, int32_t c) {
  return p->out_nchw ? output + (c * p->out_h + y) * p->out_w + x
                     : output + (y * p->out_w + x) * p->channels + c;
}

/* The band (columns x0 .. x0 + bw, channels c0 .. c0 + cb) of output row y: copied from
 * row `from` (copy), else the runs of `a` and `b` (band rows, [x][c] for NHWC, [c][x] for
 * NCHW) with weights wa, wb requantized. */
static QK_NOINLINE void qk_resize_band_row(const qanas_resize_params_t *p, const int32_t *a,
                               const int32_t *b, int32_t wa, int32_t wb, int32_t from,
                               const qk_resize_rq_t *rq, int32_t y, int32_t x0, int32_t bw,
                               int32_t c0, int32_t cb, int8_t *output) {
  const int32_t runs = p->out_nchw ? cb : cb == p->channels ? 1 : bw;
  const int32_t len = p->out_nchw ? bw : cb == p->channels ? bw * cb : cb;
  for (int32_t r = 0; r < runs; ++r) {
    const int32_t x = p->out_nchw || runs == 1 ? x0 : x0 + r, c = p->out_nchw ? c0 + r : c0;
    int8_t *out = qk_resize_out(p, output, y, x, c);
    if (from >= 0) {
      __builtin_memcpy(out, qk_resize_out(p, output, from, x, c), (size_t)len);
    } else {
      qk_resize_lerp_run(a + r * len, b + r * len, wa, wb, len, rq, out);
    }
  }
}

/* Band row h of source row `row` (see qk_resize_band_row for its layout). */
static QK_NOINLINE void qk_resize_horizontal(const qanas_resize_params_t *p, const int32_t *cols,
                                 const int8_t *input, int32_t row, int32_t x0, int32_t bw,
                                 int32_t c0, int32_t cb, int32_t *h) {
  const int32_t ow = p->out_w, ch = p->channels;
  const int32_t x_step = p->out_nchw ? 1 : cb, c_step = p->out_nchw ? bw : 1;
  const int8_t *src = input + row * p->in_w * ch + c0;
  for (int32_t x = 0; x < bw; ++x) {
    const int32_t j = x0 + x, va = cols[2 * ow + j], vb = cols[3 * ow + j];
    const int8_t *xa = src + cols[j] * ch, *xb = src + cols[ow + j] * ch;
    const int32_t zp = p->input_zero_point * (va + vb);
    int32_t *dst = h + x * x_step;
    for (int32_t c = 0; c < cb; ++c) {
      dst[c * c_step] = xa[c] * va + xb[c] * vb - zp;
    }
  }
}

static void qk_resize_bilinear(const qanas_resize_params_t *p, const int32_t *rows,
                               const int32_t *cols, const int8_t *input,
                               const qk_resize_rq_t *rq, int8_t *output) {
  const int32_t oh = p->out_h, ch = p->channels;
  /* NHWC: every channel (a band row is one run); NCHW: channels in blocks that leave the
   * band the whole output width where they can (a run per channel). */
  const int32_t fit = p->out_nchw ? QK_RESIZE_BAND / p->out_w : QK_RESIZE_BAND;
  const int32_t cb = ch < fit ? ch : fit > 1 ? fit : 1;
  int32_t cache[2][QK_RESIZE_BAND];
  for (int32_t c0 = 0; c0 < ch; c0 += cb) {
    const int32_t nc = ch - c0 < cb ? ch - c0 : cb;
    const int32_t band = QK_RESIZE_BAND / nc;
    for (int32_t x0 = 0; x0 < p->out_w; x0 += band) {
      const int32_t bw = p->out_w - x0 < band ? p->out_w - x0 : band;
      int32_t held[2] = {-1, -1}; /* the source rows in the cache */
      for (int32_t y = 0; y < oh; ++y) {
        const int32_t ra = rows[y], rb = rows[oh + y], wa = rows[2 * oh + y],
                      wb = rows[3 * oh + y];
        if (y > 0 && ra == rows[y - 1] && rb == rows[oh + y - 1] &&
            wa == rows[2 * oh + y - 1] && wb == rows[3 * oh + y - 1]) {
          qk_resize_band_row(p, 0, 0, 0, 0, y - 1, rq, y, x0, bw, c0, nc, output);
          continue;
        }
        int32_t slot[2];
        for (int32_t t = 0; t < 2; ++t) {
          const int32_t want = t == 0 ? ra : rb;
          if (held[0] == want || held[1] == want) {
            slot[t] = held[0] == want ? 0 : 1;
            continue;
          }
          /* a row not cached replaces the one the other tap does not read */
          slot[t] = t == 1 ? 1 - slot[0] : held[0] == rb ? 1 : 0;
          qk_resize_horizontal(p, cols, input, want, x0, bw, c0, nc, cache[slot[t]]);
          held[slot[t]] = want;
        }
        qk_resize_band_row(p, cache[slot[0]], cache[slot[1]], wa, wb, -1, rq, y, x0, bw, c0,
                           nc, output);
      }
    }
  }
}

static void qk_resize_nearest(const qanas_resize_params_t *p, const int32_t *rows,
                              const int32_t *cols, const int8_t *input,
                              const qk_resize_rq_t *rq, int8_t *output) {
  const int32_t ch = p->channels, ow = p->out_w;
  int32_t acc[QK_RESIZE_BAND];
  for (int32_t y = 0; y < p->out_h; ++y) {
    const int8_t *row = input + rows[y] * p->in_w * ch;
    for (int32_t x = 0; x < ow; ++x) {
      const int8_t *src = row + cols[x] * ch;
      if (!p->out_nchw && !p->rescale) {
        __builtin_memcpy(qk_resize_out(p, output, y, x, 0), src, (size_t)ch);
        continue;
      }
      for (int32_t c0 = 0; c0 < ch; c0 += QK_RESIZE_BAND) {
        const int32_t n = ch - c0 < QK_RESIZE_BAND ? ch - c0 : QK_RESIZE_BAND;
        for (int32_t c = 0; c < n; ++c) {
          acc[c] = src[c0 + c] - p->input_zero_point;
        }
        if (!p->out_nchw) {
          qk_resize_lerp_run(acc, acc, 1, 0, n, rq, qk_resize_out(p, output, y, x, c0));
          continue;
        }
        for (int32_t c = 0; c < n; ++c) { /* NCHW: one byte per channel plane */
          int8_t *out = qk_resize_out(p, output, y, x, c0 + c);
          if (p->rescale) {
            qk_resize_lerp_run(acc + c, acc + c, 1, 0, 1, rq, out);
          } else {
            *out = src[c0 + c];
          }
        }
      }
    }
  }
}

qanas_status_t qanas_resize_s8(const qanas_resize_params_t *p, const int32_t *rows,
                               const int32_t *cols, const int8_t *input, int8_t *output) {
  if (p == 0 || rows == 0 || cols == 0 || input == 0 || output == 0 || p->in_h <= 0 ||
      p->in_w <= 0 || p->channels <= 0 || p->out_h <= 0 || p->out_w <= 0 ||
      (p->method != QANAS_RESIZE_NEAREST && p->method != QANAS_RESIZE_BILINEAR)) {
    return QANAS_ERROR_BAD_ARGUMENT;
  }
  qk_resize_rq_t rq;
  qk_resize_rq_init(p, rows, cols, &rq);
  if (p->method == QANAS_RESIZE_BILINEAR) {
    qk_resize_bilinear(p, rows, cols, input, &rq, output);
  } else {
    qk_resize_nearest(p, rows, cols, input, &rq, output);
  }
  return QANAS_OK;
}
