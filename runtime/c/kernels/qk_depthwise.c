/* Depthwise convolution over NHWC int8. Channels are contiguous in NHWC, so the fast path
 * (multiplier 1, window inside the input) vectorizes across channels: each tap is one
 * load of consecutive channels at a precomputed offset. Border pixels and channel
 * multipliers above 1 take the per-element path. */
#include "qk_internal.h"

/* Taps of the fast path's offset table; larger kernels take the per-element path. */
#define QK_MAX_TAPS 64

/* The DSP and portable tap loops are unrolled where the tap count is a constant (the 3x3
 * instance below): the loop's own instructions cost as much as a tap's multiply-
 * accumulates. (Unrolled, the Helium loop ran slower: GCC 12 spilled its registers.) */
#if defined(__GNUC__)
#define QK_UNROLL_TAPS _Pragma("GCC unroll 9")
#else
#define QK_UNROLL_TAPS
#endif

/* Requantizes `count` consecutive channels from `acc` (channel o0 first). */
QK_INLINE void qk_requant_run(const int32_t *acc, int32_t count, int32_t o0,
                              const qanas_requant_t *rq, int8_t *out) {
  /* Locals, so that the int8 stores (which may alias anything) force no reloads. */
  const int32_t *const mult = rq->multiplier + o0, *const shift = rq->shift + o0;
  const int32_t zp = rq->output_zero_point, lo = rq->qmin, hi = rq->qmax;
  for (int32_t j = 0; j < count; ++j) {
    out[j] = (int8_t)qk_requantize(acc[j], mult[j], shift[j], zp, lo, hi);
  }
}

#if defined(QK_ISA_MVE)
/* Helium: 8 channels per pass (below), a predicated 4-channel int32 pass for the rest
 * (MVE has no vector-by-vector integer VMLA: VMUL + VADD); requantized in vector
 * registers when every channel's shift is <= -2. */
QK_INLINE void qk_dw_store4(int32x4_t acc, const qanas_requant_t *rq, int32_t o, int32_t n,
                            int32_t vector_requant, int8_t *out) {
  const mve_pred16_t p = vctp32q((uint32_t)n);
  if (vector_requant) {
    const int32x4_t m = vldrwq_z_s32(rq->multiplier + o, p);
    const int32x4_t s = vldrwq_z_s32(rq->shift + o, p);
    vstrbq_p_s32(out + o, qk_mve_requantize(acc, m, s, rq->output_zero_point, rq->qmin,
                                             rq->qmax), p);
    return;
  }
  int32_t lanes[4];
  vstrwq_s32(lanes, acc);
  qk_requant_run(lanes, n < 4 ? n : 4, o, rq, out + o);
}

/* even/odd += the nine taps of an inside 3x3 window for 8 channels (int16 lanes): taps
 * at row_k + kx * col with row_0 = x, row_1 = x + row_a, row_2 = row_1 + row_b (one image
 * row apart in a tensor; anywhere in the fused inverted residual's ring of rows),
 * weights at w + t * channels. Written out: GCC 12 kept the accumulators on the stack and
 * read an offset table per tap (11 instructions a tap; here 8). */
QK_INLINE void qk_mve_dw3x3_taps(const int8_t *x, int32_t row_a, int32_t row_b, int32_t col,
                                 const int8_t *w, int32_t channels, int32x4_t *even,
                                 int32x4_t *odd) {
  int32x4_t e = *even, o = *odd;
  int16x8_t tx, tw;
  int32x4_t tp;
  const int8_t *xa;
#define QK_DW_TAP(ADDR)                     \
  "vldrb.s16 %q[tx], [" ADDR "]\n\t"       \
  "vldrb.s16 %q[tw], [%[w]]\n\t"            \
  "add %[w], %[w], %[ch]\n\t"               \
  "vmullb.s16 %q[tp], %q[tx], %q[tw]\n\t"   \
  "vadd.i32 %q[e], %q[e], %q[tp]\n\t"       \
  "vmullt.s16 %q[tp], %q[tx], %q[tw]\n\t"   \
  "vadd.i32 %q[o], %q[o], %q[tp]\n\t"
#define QK_DW_ROW                            \
  QK_DW_TAP("%[x]")                          \
  "add %[xa], %[x], %[col]\n\t"             \
  QK_DW_TAP("%[xa]")                         \
  "add %[xa], %[xa], %[col]\n\t"            \
  QK_DW_TAP("%[xa]")
  __asm__(QK_DW_ROW "add %[x], %[x], %[ra]\n\t" QK_DW_ROW "add %[x], %[x], %[rb]\n\t"
          QK_DW_ROW
          : [e] "+w"(e), [o] "+w"(o), [tx] "=&w"(tx), [tw] "=&w"(tw), [tp] "=&w"(tp),
            [x] "+r"(x), [w] "+r"(w), [xa] "=&r"(xa)
          : [ra] "r"(row_a), [rb] "r"(row_b), [col] "r"(col), [ch] "r"(channels)
          : "memory");
#undef QK_DW_ROW
#undef QK_DW_TAP
  *even = e, *odd = o;
}

/* row_a != 0: an inside 3x3 window, taps as in qk_mve_dw3x3_taps (row_a, row_b: the
 * increments from kernel row 0 to 1 and 1 to 2; col_step between columns), the offset
 * table then not read for the 8-channel passes. */
QK_INLINE void qk_dw_pixel3(const int8_t *x, const int32_t *offsets, int32_t taps,
                            int32_t row_a, int32_t row_b, int32_t col_step,
                            const int8_t *w, int32_t channels, const int32_t *bias,
                            const qanas_requant_t *rq, int32_t vector_requant, int8_t *out) {
  int32_t c = 0;
  const int32_t all_taps = taps;
  const uint32x4_t even_bytes = vidupq_n_u32(0, 2); /* byte offsets 0, 2, 4, 6 */
  /* 8 channels per pass as int16 lanes: VMULLB/VMULLT give the exact int32 products of
   * the even and odd channels, accumulated in two vectors; VLD2 splits bias and
   * requantization constants the same way, VMOVNB/VMOVNT interleave the results back. */
  for (; c + 8 <= channels; c += 8) {
    const int32x4x2_t b = vld2q_s32(bias + c);
    int32x4_t even = b.val[0], odd = b.val[1];
    const int8_t *wt = w + c;
    const int8_t *xc = x + c;
    if (row_a != 0) { /* an inside 3x3 window: the taps written out (below) */
      qk_mve_dw3x3_taps(xc, row_a, row_b, col_step, wt, channels, &even, &odd);
      taps = 0;
    }
    for (int32_t t = 0; t < taps; ++t, wt += channels) {
      const int16x8_t vx = vldrbq_s16(xc + offsets[t]);
      const int16x8_t vw = vldrbq_s16(wt);
      even = vaddq_s32(even, vmullbq_int_s16(vx, vw));
      odd = vaddq_s32(odd, vmulltq_int_s16(vx, vw));
    }
    if (vector_requant) {
      const int32x4x2_t m = vld2q_s32(rq->multiplier + c);
      const int32x4x2_t sh = vld2q_s32(rq->shift + c);
      const int32x4_t qe = qk_mve_requantize(even, m.val[0], sh.val[0], rq->output_zero_point,
                                             rq->qmin, rq->qmax);
      const int32x4_t qo = qk_mve_requantize(odd, m.val[1], sh.val[1], rq->output_zero_point,
                                             rq->qmin, rq->qmax);
      /* even and odd channels straight to their bytes: two scatter stores */
      vstrbq_scatter_offset_s32(out + c, even_bytes, qe);
      vstrbq_scatter_offset_s32(out + c + 1, even_bytes, qo);
    } else {
      int32_t e[4], d[4];
      vstrwq_s32(e, even);
      vstrwq_s32(d, odd);
      const int32_t acc[8] = {e[0], d[0], e[1], d[1], e[2], d[2], e[3], d[3]};
      qk_requant_run(acc, 8, c, rq, out + c);
    }
  }
  taps = all_taps;
  for (; c < channels; c += 4) {
    const int32_t n = channels - c;
    const mve_pred16_t p = vctp32q((uint32_t)n);
    int32x4_t a = vldrwq_z_s32(bias + c, p);
    for (int32_t t = 0; t < taps; ++t) {
      a = vaddq_s32(a, vmulq_s32(vldrbq_z_s32(x + offsets[t] + c, p),
                                 vldrbq_z_s32(w + t * channels + c, p)));
    }
    qk_dw_store4(a, rq, c, n, vector_requant, out);
  }
}

QK_INLINE void qk_dw_pixel(const int8_t *x, const int32_t *offsets, int32_t taps,
                            const int8_t *w, int32_t channels, const int32_t *bias,
                            const qanas_requant_t *rq, int32_t vector_requant, int8_t *out) {
  qk_dw_pixel3(x, offsets, taps, 0, 0, 0, w, channels, bias, rq, vector_requant, out);
}

#elif defined(QK_ISA_DSP)
/* Requantizes channels c .. c + 3 from registers (through an array, GCC stored and
 * reloaded them) and stores them as one word. */
QK_INLINE void qk_dw_store4(int32_t a0, int32_t a1, int32_t a2, int32_t a3, int32_t c,
                            const qanas_requant_t *rq, int8_t *out) {
  const int32_t *const m = rq->multiplier + c, *const sh = rq->shift + c;
  const int32_t zp = rq->output_zero_point, lo = rq->qmin, hi = rq->qmax;
  const int32_t q0 = qk_requantize(a0, m[0], sh[0], zp, lo, hi);
  const int32_t q1 = qk_requantize(a1, m[1], sh[1], zp, lo, hi);
  const int32_t q2 = qk_requantize(a2, m[2], sh[2], zp, lo, hi);
  const int32_t q3 = qk_requantize(a3, m[3], sh[3], zp, lo, hi);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
  const uint32_t word = (uint32_t)(q0 & 0xff) | (uint32_t)(q1 & 0xff) << 8 |
                        (uint32_t)(q2 & 0xff) << 16 | (uint32_t)q3 << 24;
  __builtin_memcpy(out + c, &word, sizeof(word));
#else
  out[c] = (int8_t)q0, out[c + 1] = (int8_t)q1, out[c + 2] = (int8_t)q2;
  out[c + 3] = (int8_t)q3;
#endif
}

/* DSP extension: 4 channels per word; SXTB16 splits (c0 c1 c2 c3) into (c0, c2) and
 * (c1, c3), SMLABB/SMLATT multiply-accumulate the matching halfwords. */
QK_INLINE void qk_dw_pixel(const int8_t *x, const int32_t *offsets, int32_t taps,
                        const int8_t *w, int32_t channels, const int32_t *bias,
                        const qanas_requant_t *rq, int32_t vector_requant, int8_t *out) {
  (void)vector_requant;
  int32_t c = 0;
  for (; c + 4 <= channels; c += 4) {
    int32_t a0 = bias[c], a1 = bias[c + 1], a2 = bias[c + 2], a3 = bias[c + 3];
    const int8_t *wt = w + c;
    const int8_t *xc = x + c;
QK_UNROLL_TAPS
    for (int32_t t = 0; t < taps; ++t, wt += channels) {
      const int32_t xw = qk_read_word(xc + offsets[t]), ww = qk_read_word(wt);
      const int32_t xe = (int32_t)__sxtb16(xw), xo = qk_sxtb16_ror8(xw);
      const int32_t we = (int32_t)__sxtb16(ww), wo = qk_sxtb16_ror8(ww);
      a0 = __smlabb(xe, we, a0);
      a2 = __smlatt(xe, we, a2);
      a1 = __smlabb(xo, wo, a1);
      a3 = __smlatt(xo, wo, a3);
    }
    qk_dw_store4(a0, a1, a2, a3, c, rq, out);
  }
  for (; c < channels; ++c) {
    int32_t acc = bias[c];
    for (int32_t t = 0; t < taps; ++t) {
      acc += x[offsets[t] + c] * w[t * channels + c];
    }
    qk_requant_run(&acc, 1, c, rq, out + c);
  }
}


/* An inside 3x3 window of a multiplier-1 depthwise conv: taps at row_k + kx * col with
 * row_0 = x, row_1 = x + row_a, row_2 = row_1 + row_b (byte offsets, dilation included;
 * equal in a tensor, anything in the fused inverted residual's ring of rows). The tap
 * addresses are three row pointers plus register offsets, instead of a table read per
 * tap. */
static QK_NOINLINE void qk_dw3x3_pixel(const int8_t *x, int32_t row_a, int32_t row_b,
                                       int32_t col,
                                       const int8_t *w, int32_t channels,
                                       const int32_t *bias, const qanas_requant_t *rq,
                                       int32_t vector_requant, int8_t *out) {
  (void)vector_requant;
  const int32_t col2 = 2 * col;
  int32_t c = 0;
  for (; c + 4 <= channels; c += 4) {
    int32_t a0 = bias[c], a1 = bias[c + 1], a2 = bias[c + 2], a3 = bias[c + 3];
    const int8_t *wt = w + c;
    const int8_t *xr = x + c;
#if defined(__GNUC__)
#pragma GCC unroll 3
#endif
    for (int32_t ky = 0; ky < 3; ++ky, xr += ky == 1 ? row_a : row_b) {
#if defined(__GNUC__)
#pragma GCC unroll 3
#endif
      for (int32_t kx = 0; kx < 3; ++kx, wt += channels) {
        const int32_t xw = qk_read_word(xr + (kx == 0 ? 0 : kx == 1 ? col : col2));
        const int32_t ww = qk_read_word(wt);
        const int32_t xe = (int32_t)__sxtb16(xw), xo = qk_sxtb16_ror8(xw);
        const int32_t we = (int32_t)__sxtb16(ww), wo = qk_sxtb16_ror8(ww);
        a0 = __smlabb(xe, we, a0);
        a2 = __smlatt(xe, we, a2);
        a1 = __smlabb(xo, wo, a1);
        a3 = __smlatt(xo, wo, a3);
      }
    }
    qk_dw_store4(a0, a1, a2, a3, c, rq, out);
  }
  for (; c < channels; ++c) {
    int32_t acc = bias[c];
    for (int32_t t = 0; t < 9; ++t) {
      const int32_t ky = t / 3, dy = ky == 0 ? 0 : ky == 1 ? row_a : row_a + row_b;
      acc += x[dy + (t % 3) * col + c] * w[t * channels + c];
    }
    qk_requant_run(&acc, 1, c, rq, out + c);
  }
}

#else
/* Portable (and host SIMD through the compiler): runs of 16 channels accumulated in an
 * array the compiler keeps in vector registers. */
QK_INLINE void qk_dw_pixel(const int8_t *x, const int32_t *offsets, int32_t taps,
                        const int8_t *w, int32_t channels, const int32_t *bias,
                        const qanas_requant_t *rq, int32_t vector_requant, int8_t *out) {
  (void)vector_requant;
  for (int32_t c = 0; c < channels; c += 16) {
    const int32_t n = channels - c < 16 ? channels - c : 16;
    int32_t acc[16];
    for (int32_t j = 0; j < n; ++j) {
      acc[j] = bias[c + j];
    }
    for (int32_t t = 0; t < taps; ++t) {
      const int8_t *xt = x + offsets[t] + c;
      const int8_t *wt = w + t * channels + c;
      for (int32_t j = 0; j < n; ++j) {
        acc[j] += xt[j] * wt[j];
      }
    }
    qk_requant_run(acc, n, c, rq, out + c);
  }
}
#endif

/* Bytes of a gathered border window (taps x channels), on the stack. */
#define QK_DW_PATCH_MAX 576

/* Copies the window of output (oy, ox) tap by tap (channels contiguous), taps in the
 * padding set to the input zero point. */
static void qk_dw_gather(const qanas_conv_params_t *c, const int8_t *input, int32_t oy,
                         int32_t ox, int8_t *patch) {
  for (int32_t ky = 0; ky < c->kernel_h; ++ky) {
    const int32_t iy = oy * c->stride_h - c->pad_top + ky * c->dilation_h;
    for (int32_t kx = 0; kx < c->kernel_w; ++kx, patch += c->in_c) {
      const int32_t ix = ox * c->stride_w - c->pad_left + kx * c->dilation_w;
      if (iy >= 0 && iy < c->in_h && ix >= 0 && ix < c->in_w) {
        const int8_t *x = input + (iy * c->in_w + ix) * c->in_c;
        for (int32_t i = 0; i < c->in_c; ++i) {
          patch[i] = x[i];
        }
      } else {
        for (int32_t i = 0; i < c->in_c; ++i) {
          patch[i] = (int8_t)c->input_zero_point;
        }
      }
    }
  }
}

/* One output element of any depthwise conv (border, multiplier > 1, big kernels). */
static int32_t qk_dw_element(const qanas_conv_params_t *c, const int8_t *input,
                             const int8_t *weights, int32_t oy, int32_t ox, int32_t o,
                             int32_t acc) {
  const int32_t ch = o / c->depth_multiplier;
  for (int32_t ky = 0; ky < c->kernel_h; ++ky) {
    const int32_t iy = oy * c->stride_h - c->pad_top + ky * c->dilation_h;
    for (int32_t kx = 0; kx < c->kernel_w; ++kx) {
      const int32_t ix = ox * c->stride_w - c->pad_left + kx * c->dilation_w;
      const int32_t wv = weights[(ky * c->kernel_w + kx) * c->out_c + o];
      const int32_t inside = iy >= 0 && iy < c->in_h && ix >= 0 && ix < c->in_w;
      acc += wv * (inside ? input[(iy * c->in_w + ix) * c->in_c + ch] : c->input_zero_point);
    }
  }
  return acc;
}

qanas_status_t qanas_depthwise_conv2d_s8(const qanas_conv_params_t *c, const int8_t *input,
                                         const int8_t *weights, const int32_t *bias,
                                         const qanas_requant_t *rq, int8_t *output) {
  if (c == 0 || input == 0 || weights == 0 || bias == 0 || rq == 0 || output == 0 ||
      c->in_h <= 0 || c->in_w <= 0 || c->in_c <= 0 || c->out_h <= 0 || c->out_w <= 0 ||
      c->kernel_h <= 0 || c->kernel_w <= 0 || c->stride_h <= 0 || c->stride_w <= 0 ||
      c->dilation_h <= 0 || c->dilation_w <= 0 || c->pad_top < 0 || c->pad_left < 0 ||
      c->depth_multiplier <= 0 || c->out_c != c->in_c * c->depth_multiplier) {
    return QANAS_ERROR_BAD_ARGUMENT;
  }
  const int32_t taps = c->kernel_h * c->kernel_w;
  const int32_t fast = c->depth_multiplier == 1 && taps <= QK_MAX_TAPS;
  /* A border window that fits is gathered (padding = input zero point) and runs the
   * fast path with the gathered offsets t * channels. */
  const int32_t gather = fast && taps * c->in_c <= QK_DW_PATCH_MAX;
  int32_t patch_offsets[QK_MAX_TAPS];
  int8_t patch[QK_DW_PATCH_MAX];
  int32_t vector_requant = 0;
  if (fast) {
    for (int32_t t = 0; t < taps; ++t) {
      patch_offsets[t] = t * c->in_c;
    }
    vector_requant = qk_all_narrow_shifts(rq->shift, c->out_c);
  }
  /* Output columns [inside_first, inside_last] have their windows inside along w. */
  const int32_t inside_first = (c->pad_left + c->stride_w - 1) / c->stride_w;
  const int32_t reach = c->in_w - 1 - (c->kernel_w - 1) * c->dilation_w + c->pad_left;
  const int32_t inside_last = reach < 0 ? -1 : reach / c->stride_w;
  const int32_t row_bytes = c->in_w * c->in_c;
  for (int32_t oy = 0; oy < c->out_h; ++oy) {
    const int32_t y0 = oy * c->stride_h - c->pad_top;
    const int32_t rows_inside = y0 >= 0 && y0 + (c->kernel_h - 1) * c->dilation_h < c->in_h;
    for (int32_t ox = 0; ox < c->out_w; ++ox) {
      int8_t *out = output + (oy * c->out_w + ox) * c->out_c;
      if (fast && rows_inside && ox == inside_first && ox <= inside_last) {
        /* the run of inside windows: the row micro-kernels, rows one image row apart */
        const int32_t last = inside_last < c->out_w - 1 ? inside_last : c->out_w - 1;
        const int8_t *rows[QK_MAX_TAPS];
        for (int32_t ky = 0; ky < c->kernel_h; ++ky) {
          rows[ky] = input + (y0 + ky * c->dilation_h) * row_bytes +
                     (ox * c->stride_w - c->pad_left) * c->in_c;
        }
        qk_depthwise_row(rows, c->kernel_h, c->kernel_w, last - ox + 1, c->stride_w * c->in_c,
                         c->dilation_w * c->in_c, c->in_c, weights, bias, rq, vector_requant,
                         out);
        ox = last;
        continue;
      }
      if (gather) {
        qk_dw_gather(c, input, oy, ox, patch);
#if defined(QK_ISA_MVE)
        if (c->kernel_h == 3 && c->kernel_w == 3) { /* the gathered window is 3x3 too */
          qk_dw_pixel3(patch, patch_offsets, 9, 3 * c->in_c, 3 * c->in_c, c->in_c, weights,
                       c->out_c, bias, rq, vector_requant, out);
          continue;
        }
#endif
        qk_dw_pixel(patch, patch_offsets, taps, weights, c->out_c, bias, rq, vector_requant,
                    out);
        continue;
      }
      for (int32_t o = 0; o < c->out_c; ++o) {
        const int32_t acc = qk_dw_element(c, input, weights, oy, ox, o, bias[o]);
        out[o] = (int8_t)qk_requantize(acc, rq->multiplier[o], rq->shift[o],
                                       rq->output_zero_point, rq->qmin, rq->qmax);
      }
    }
  }
  return QANAS_OK;
}

void qk_depthwise_row(const int8_t *const *rows, int32_t kernel_h, int32_t kernel_w,
                      int32_t out_w, int32_t step, int32_t col, int32_t channels,
                      const int8_t *weights, const int32_t *bias, const qanas_requant_t *rq,
                      int32_t vector_requant, int8_t *out) {
  const int32_t taps = kernel_h * kernel_w;
  if (taps > QK_MAX_TAPS) { /* 9x9 and larger: per element (correct, not fast) */
    for (int32_t ox = 0; ox < out_w; ++ox, out += channels) {
      for (int32_t c = 0; c < channels; ++c) {
        int32_t acc = bias[c];
        for (int32_t t = 0; t < taps; ++t) {
          const int8_t *x = rows[t / kernel_w] + ox * step + (t % kernel_w) * col;
          acc += x[c] * weights[t * channels + c];
        }
        out[c] = (int8_t)qk_requantize(acc, rq->multiplier[c], rq->shift[c],
                                       rq->output_zero_point, rq->qmin, rq->qmax);
      }
    }
    return;
  }
  /* Tap offsets from kernel row 0's pointer: the rows may be anywhere in one buffer. */
  int32_t offsets[QK_MAX_TAPS];
  for (int32_t t = 0; t < taps; ++t) {
    offsets[t] = (int32_t)(rows[t / kernel_w] - rows[0]) + (t % kernel_w) * col;
  }
  const int32_t is3x3 = kernel_h == 3 && kernel_w == 3;
  for (int32_t ox = 0; ox < out_w; ++ox, out += channels) {
    const int8_t *x = rows[0] + ox * step;
#if defined(QK_ISA_MVE) || defined(QK_ISA_DSP)
    if (is3x3) {
      const int32_t row_a = (int32_t)(rows[1] - rows[0]), row_b = (int32_t)(rows[2] - rows[1]);
#if defined(QK_ISA_MVE)
      qk_dw_pixel3(x, offsets, 9, row_a, row_b, col, weights, channels, bias, rq,
                   vector_requant, out);
#else
      qk_dw3x3_pixel(x, row_a, row_b, col, weights, channels, bias, rq, vector_requant, out);
#endif
      continue;
    }
#endif
    if (is3x3) { /* a constant tap count, unrolled */
      qk_dw_pixel(x, offsets, 9, weights, channels, bias, rq, vector_requant, out);
    } else {
      qk_dw_pixel(x, offsets, taps, weights, channels, bias, rq, vector_requant, out);
    }
  }
}
