/* Depthwise convolution over NHWC int8. Channels are contiguous in NHWC, so the fast path
 * (multiplier 1, window inside the input) vectorizes across channels: each tap is one
 * load of consecutive channels at a precomputed offset. Border pixels and channel
 * multipliers above 1 take the per-element path. */
#include "qk_internal.h"

/* Taps of the fast path's offset table; larger kernels take the per-element path. */
#define QK_MAX_TAPS 64

/* Requantizes `count` consecutive channels from `acc` (channel o0 first). */
QK_INLINE void qk_requant_run(const int32_t *acc, int32_t count, int32_t o0,
                              const qanas_requant_t *rq, int8_t *out) {
  for (int32_t j = 0; j < count; ++j) {
    out[j] = (int8_t)qk_requantize(acc[j], rq->multiplier[o0 + j], rq->shift[o0 + j],
                                   rq->output_zero_point, rq->qmin, rq->qmax);
  }
}

#if defined(QK_ISA_MVE)
/* Helium: 4 channels per int32 vector (widening byte loads, VMLA), requantized in vector
 * registers when every channel's shift is <= -2 (see qk_requantize). */
static void qk_dw_pixel(const int8_t *x, const int32_t *offsets, int32_t taps,
                        const int8_t *w, int32_t channels, const int32_t *bias,
                        const qanas_requant_t *rq, int32_t vector_requant, int8_t *out) {
  for (int32_t c = 0; c < channels; c += 4) {
    const mve_pred16_t p = vctp32q((uint32_t)(channels - c));
    int32x4_t acc = vldrwq_z_s32(bias + c, p);
    for (int32_t t = 0; t < taps; ++t) {
      const int32x4_t vx = vldrbq_z_s32(x + offsets[t] + c, p);
      const int32x4_t vw = vldrbq_z_s32(w + t * channels + c, p);
      acc = vaddq_s32(acc, vmulq_s32(vx, vw));
    }
    if (vector_requant) {
      const int32x4_t m = vldrwq_z_s32(rq->multiplier + c, p);
      const int32x4_t s = vldrwq_z_s32(rq->shift + c, p); /* -k, k >= 2 */
      const int32x4_t high = vmulhq_s32(acc, m);
      const int32x4_t low = vmulq_s32(acc, m);
      /* y = 2 * high + (low != 0): the product reduced to 33 bits, rounded to odd.
       * (x | -x) >> 31 is x != 0 as 0/1; GCC 12 miscompiles predicated forms here. */
      const uint32x4_t low_u = vreinterpretq_u32_s32(low);
      const uint32x4_t sticky =
          vshrq_n_u32(vorrq_u32(low_u, vreinterpretq_u32_s32(vnegq_s32(low))), 31);
      const int32x4_t y = vorrq_s32(vshlq_n_s32(high, 1), vreinterpretq_s32_u32(sticky));
      int32x4_t q = vrshlq_s32(y, s); /* round half up by k bits (exact, no overflow) */
      /* A tie leaves the dropped bits 100...0; then round to even by clearing bit 0. */
      const int32x4_t below = vshlq_s32(y, vaddq_n_s32(s, 32));
      const int32x4_t off_tie = veorq_s32(below, vdupq_n_s32(INT32_MIN));
      const uint32x4_t not_tie = vshrq_n_u32(
          vreinterpretq_u32_s32(vorrq_s32(off_tie, vnegq_s32(off_tie))), 31);
      q = vandq_s32(q, vorrq_s32(vdupq_n_s32(~1), vreinterpretq_s32_u32(not_tie)));
      q = vaddq_n_s32(q, rq->output_zero_point);
      q = vmaxq_s32(q, vdupq_n_s32(rq->qmin));
      q = vminq_s32(q, vdupq_n_s32(rq->qmax));
      vstrbq_p_s32(out + c, q, p);
    } else {
      int32_t lanes[4];
      vstrwq_s32(lanes, acc);
      const int32_t n = channels - c < 4 ? channels - c : 4;
      qk_requant_run(lanes, n, c, rq, out + c);
    }
  }
}

#elif defined(QK_ISA_DSP)
/* DSP extension: 4 channels per word; SXTB16 splits (c0 c1 c2 c3) into (c0, c2) and
 * (c1, c3), SMLABB/SMLATT multiply-accumulate the matching halfwords. */
QK_INLINE int32_t qk_word(const int8_t *p) {
  int32_t v;
  __builtin_memcpy(&v, p, sizeof(v));
  return v;
}

static void qk_dw_pixel(const int8_t *x, const int32_t *offsets, int32_t taps,
                        const int8_t *w, int32_t channels, const int32_t *bias,
                        const qanas_requant_t *rq, int32_t vector_requant, int8_t *out) {
  (void)vector_requant;
  int32_t c = 0;
  for (; c + 4 <= channels; c += 4) {
    int32_t acc[4] = {bias[c], bias[c + 1], bias[c + 2], bias[c + 3]};
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    const int8_t *wt = w + c;
    for (int32_t t = 0; t < taps; ++t, wt += channels) {
      const int32_t xw = qk_word(x + offsets[t] + c), ww = qk_word(wt);
      const int32_t xe = (int32_t)__sxtb16(xw), xo = (int32_t)__sxtb16(qk_ror8(xw));
      const int32_t we = (int32_t)__sxtb16(ww), wo = (int32_t)__sxtb16(qk_ror8(ww));
      a0 = __smlabb(xe, we, a0);
      a2 = __smlatt(xe, we, a2);
      a1 = __smlabb(xo, wo, a1);
      a3 = __smlatt(xo, wo, a3);
    }
    acc[0] = a0, acc[1] = a1, acc[2] = a2, acc[3] = a3;
    qk_requant_run(acc, 4, c, rq, out + c);
  }
  for (; c < channels; ++c) {
    int32_t acc = bias[c];
    for (int32_t t = 0; t < taps; ++t) {
      acc += x[offsets[t] + c] * w[t * channels + c];
    }
    qk_requant_run(&acc, 1, c, rq, out + c);
  }
}

#else
/* Portable (and host SIMD through the compiler): runs of 16 channels accumulated in an
 * array the compiler keeps in vector registers. */
static void qk_dw_pixel(const int8_t *x, const int32_t *offsets, int32_t taps,
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
  int32_t offsets[QK_MAX_TAPS];
  int32_t vector_requant = 1;
  if (fast) {
    for (int32_t ky = 0; ky < c->kernel_h; ++ky) {
      for (int32_t kx = 0; kx < c->kernel_w; ++kx) {
        offsets[ky * c->kernel_w + kx] =
            (ky * c->dilation_h * c->in_w + kx * c->dilation_w) * c->in_c;
      }
    }
    for (int32_t o = 0; o < c->out_c; ++o) {
      vector_requant = vector_requant && rq->shift[o] <= -2;
    }
  }
  for (int32_t oy = 0; oy < c->out_h; ++oy) {
    const int32_t y0 = oy * c->stride_h - c->pad_top;
    const int32_t rows_inside = y0 >= 0 && y0 + (c->kernel_h - 1) * c->dilation_h < c->in_h;
    for (int32_t ox = 0; ox < c->out_w; ++ox) {
      const int32_t x0 = ox * c->stride_w - c->pad_left;
      int8_t *out = output + (oy * c->out_w + ox) * c->out_c;
      if (fast && rows_inside && x0 >= 0 &&
          x0 + (c->kernel_w - 1) * c->dilation_w < c->in_w) {
        qk_dw_pixel(input + (y0 * c->in_w + x0) * c->in_c, offsets, taps, weights, c->out_c,
                    bias, rq, vector_requant, out);
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
