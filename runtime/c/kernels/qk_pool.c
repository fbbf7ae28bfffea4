/* Average and global average pooling over NHWC int8: int32 window sums of x - zero_point
 * (the padding adds 0), the division by the count folded into the multiplier. Pooling
 * does one add per loaded byte, so it is bound by loads, not by arithmetic: the channel
 * loops are plain C that compilers vectorize where it pays (host, Helium), and no
 * hand-written SIMD is needed. */
#include "qk_internal.h"

/* Channels summed per pass (an int32 array the compiler can keep in registers). */
#define QK_POOL_RUN 16

qanas_status_t qanas_avg_pool2d_s8(const qanas_pool_params_t *p, const int8_t *input,
                                   const qanas_requant_t *rq, int8_t *output) {
  if (p == 0 || input == 0 || rq == 0 || output == 0 || p->in_h <= 0 || p->in_w <= 0 ||
      p->channels <= 0 || p->out_h <= 0 || p->out_w <= 0 || p->kernel_h <= 0 ||
      p->kernel_w <= 0 || p->stride_h <= 0 || p->stride_w <= 0 || p->pad_top < 0 ||
      p->pad_left < 0) {
    return QANAS_ERROR_BAD_ARGUMENT;
  }
  const int32_t full = p->kernel_h * p->kernel_w;
  for (int32_t oy = 0; oy < p->out_h; ++oy) {
    const int32_t y0 = oy * p->stride_h - p->pad_top;
    const int32_t ya = y0 < 0 ? 0 : y0;
    const int32_t yb = y0 + p->kernel_h > p->in_h ? p->in_h : y0 + p->kernel_h;
    for (int32_t ox = 0; ox < p->out_w; ++ox) {
      const int32_t x0 = ox * p->stride_w - p->pad_left;
      const int32_t xa = x0 < 0 ? 0 : x0;
      const int32_t xb = x0 + p->kernel_w > p->in_w ? p->in_w : x0 + p->kernel_w;
      const int32_t valid = (yb - ya) * (xb - xa);
      const int32_t count = p->count_include_pad ? full : valid;
      const int32_t m = rq->multiplier[count], s = rq->shift[count];
      int8_t *out = output + (oy * p->out_w + ox) * p->channels;
      for (int32_t c = 0; c < p->channels; c += QK_POOL_RUN) {
        const int32_t n = p->channels - c < QK_POOL_RUN ? p->channels - c : QK_POOL_RUN;
        int32_t acc[QK_POOL_RUN];
        for (int32_t j = 0; j < n; ++j) {
          acc[j] = -valid * p->input_zero_point;
        }
        for (int32_t y = ya; y < yb; ++y) {
          for (int32_t x = xa; x < xb; ++x) {
            const int8_t *px = input + (y * p->in_w + x) * p->channels + c;
            for (int32_t j = 0; j < n; ++j) {
              acc[j] += px[j];
            }
          }
        }
        for (int32_t j = 0; j < n; ++j) {
          out[c + j] = (int8_t)qk_requantize(acc[j], m, s, rq->output_zero_point, rq->qmin,
                                             rq->qmax);
        }
      }
    }
  }
  return QANAS_OK;
}

qanas_status_t qanas_global_avg_pool_s8(int32_t height, int32_t width, int32_t channels,
                                        int32_t input_zero_point, const int8_t *input,
                                        const qanas_requant_t *rq, int8_t *output) {
  if (input == 0 || rq == 0 || output == 0 || height <= 0 || width <= 0 || channels <= 0) {
    return QANAS_ERROR_BAD_ARGUMENT;
  }
  const int32_t pixels = height * width;
  for (int32_t c = 0; c < channels; c += QK_POOL_RUN) {
    const int32_t n = channels - c < QK_POOL_RUN ? channels - c : QK_POOL_RUN;
    int32_t acc[QK_POOL_RUN];
    for (int32_t j = 0; j < n; ++j) {
      acc[j] = -pixels * input_zero_point;
    }
    for (int32_t i = 0; i < pixels; ++i) {
      const int8_t *px = input + i * channels + c;
      for (int32_t j = 0; j < n; ++j) {
        acc[j] += px[j];
      }
    }
    for (int32_t j = 0; j < n; ++j) {
      output[c + j] = (int8_t)qk_requantize(acc[j], rq->multiplier[0], rq->shift[0],
                                            rq->output_zero_point, rq->qmin, rq->qmax);
    }
  }
  return QANAS_OK;
}
