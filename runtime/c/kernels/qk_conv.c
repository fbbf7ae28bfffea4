/* Pointwise and k x k convolutions (grouped, strided, dilated, 3-channel stems) over NHWC
 * int8, as 2-pixel x 2-channel blocks of the qk_dot_2x2 micro-kernel. */
#include "qk_internal.h"

qanas_status_t qanas_pointwise_conv_s8(int32_t pixels, int32_t in_c, int32_t out_c,
                                       const int8_t *input, const int8_t *weights,
                                       const int32_t *bias, const qanas_requant_t *rq,
                                       int8_t *output) {
  if (input == 0 || weights == 0 || bias == 0 || rq == 0 || output == 0 || pixels < 0 ||
      in_c <= 0 || out_c <= 0) {
    return QANAS_ERROR_BAD_ARGUMENT;
  }
  for (int32_t p = 0; p < pixels; p += 2) {
    const int32_t two_pixels = p + 1 < pixels;
    const int8_t *x0 = input + p * in_c;
    const int8_t *x1 = two_pixels ? x0 + in_c : x0;
    int8_t *out0 = output + p * out_c;
    int8_t *out1 = two_pixels ? out0 + out_c : 0;
    for (int32_t o = 0; o < out_c; o += 2) {
      const int32_t two_channels = o + 1 < out_c;
      const int8_t *w0 = weights + o * in_c;
      const int8_t *w1 = two_channels ? w0 + in_c : w0;
      const int32_t b1 = bias[two_channels ? o + 1 : o];
      int32_t acc[4] = {bias[o], b1, bias[o], b1};
      qk_dot_2x2(x0, x1, w0, w1, in_c, acc);
      qk_store_2x2(acc, rq, o, two_channels, out0, out1);
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

/* Accumulates two output pixels (both windows inside the input) for channels o, o + 1 of
 * group g: per kernel row one contiguous run when the row's taps are adjacent (ungrouped,
 * no dilation along w), else one run of in_c / groups per tap. */
static void qk_conv_interior(const qanas_conv_params_t *c, const int8_t *x0, const int8_t *x1,
                             const int8_t *w0, const int8_t *w1, int32_t acc[4]) {
  const int32_t cin_g = c->in_c / c->groups;
  const int32_t row = c->in_w * c->in_c;
  if (c->groups == 1 && c->dilation_w == 1) {
    const int32_t run = c->kernel_w * c->in_c;
    for (int32_t ky = 0; ky < c->kernel_h; ++ky) {
      const int32_t dy = ky * c->dilation_h * row;
      qk_dot_2x2(x0 + dy, x1 + dy, w0 + ky * run, w1 + ky * run, run, acc);
    }
    return;
  }
  for (int32_t ky = 0; ky < c->kernel_h; ++ky) {
    for (int32_t kx = 0; kx < c->kernel_w; ++kx) {
      const int32_t d = ky * c->dilation_h * row + kx * c->dilation_w * c->in_c;
      const int32_t t = (ky * c->kernel_w + kx) * cin_g;
      qk_dot_2x2(x0 + d, x1 + d, w0 + t, w1 + t, cin_g, acc);
    }
  }
}

/* One output pixel whose window crosses the border: taps in the padding read the input
 * zero point (the bias has -zero_point * sum(w) folded in, so they add zero_point * w). */
static void qk_conv_border(const qanas_conv_params_t *c, const int8_t *x_group, int32_t oy,
                           int32_t ox, const int8_t *w0, const int8_t *w1, int32_t acc[4]) {
  const int32_t cin_g = c->in_c / c->groups;
  for (int32_t ky = 0; ky < c->kernel_h; ++ky) {
    const int32_t iy = oy * c->stride_h - c->pad_top + ky * c->dilation_h;
    for (int32_t kx = 0; kx < c->kernel_w; ++kx) {
      const int32_t ix = ox * c->stride_w - c->pad_left + kx * c->dilation_w;
      const int32_t t = (ky * c->kernel_w + kx) * cin_g;
      if (iy >= 0 && iy < c->in_h && ix >= 0 && ix < c->in_w) {
        const int8_t *x = x_group + (iy * c->in_w + ix) * c->in_c;
        qk_dot_2x2(x, x, w0 + t, w1 + t, cin_g, acc);
      } else {
        int32_t s0 = 0, s1 = 0;
        for (int32_t i = 0; i < cin_g; ++i) {
          s0 += w0[t + i];
          s1 += w1[t + i];
        }
        acc[0] += c->input_zero_point * s0;
        acc[1] += c->input_zero_point * s1;
      }
    }
  }
}

static int32_t qk_conv_params_valid(const qanas_conv_params_t *c) {
  return c->in_h > 0 && c->in_w > 0 && c->in_c > 0 && c->out_h > 0 && c->out_w > 0 &&
         c->out_c > 0 && c->kernel_h > 0 && c->kernel_w > 0 && c->stride_h > 0 &&
         c->stride_w > 0 && c->dilation_h > 0 && c->dilation_w > 0 && c->pad_top >= 0 &&
         c->pad_left >= 0;
}

qanas_status_t qanas_conv2d_s8(const qanas_conv_params_t *c, const int8_t *input,
                               const int8_t *weights, const int32_t *bias,
                               const qanas_requant_t *rq, int8_t *output) {
  if (c == 0 || input == 0 || weights == 0 || bias == 0 || rq == 0 || output == 0 ||
      !qk_conv_params_valid(c) || c->groups <= 0 || c->in_c % c->groups != 0 ||
      c->out_c % c->groups != 0) {
    return QANAS_ERROR_BAD_ARGUMENT;
  }
  if (c->kernel_h == 1 && c->kernel_w == 1 && c->stride_h == 1 && c->stride_w == 1 &&
      c->pad_top == 0 && c->pad_left == 0 && c->groups == 1 && c->out_h == c->in_h &&
      c->out_w == c->in_w) {
    return qanas_pointwise_conv_s8(c->in_h * c->in_w, c->in_c, c->out_c, input, weights,
                                   bias, rq, output);
  }
  const int32_t cin_g = c->in_c / c->groups, cout_g = c->out_c / c->groups;
  const int32_t wsize = c->kernel_h * c->kernel_w * cin_g;
  for (int32_t oy = 0; oy < c->out_h; ++oy) {
    for (int32_t ox = 0; ox < c->out_w; ox += 2) {
      const int32_t two = ox + 1 < c->out_w;
      const int32_t inside = qk_window_inside(c, oy, ox) &&
                             (!two || qk_window_inside(c, oy, ox + 1));
      int8_t *out0 = output + (oy * c->out_w + ox) * c->out_c;
      int8_t *out1 = two ? out0 + c->out_c : 0;
      const int8_t *x0 = inside ? input + ((oy * c->stride_h - c->pad_top) * c->in_w +
                                           (ox * c->stride_w - c->pad_left)) * c->in_c
                                : input;
      const int8_t *x1 = two ? x0 + c->stride_w * c->in_c : x0;
      for (int32_t g = 0; g < c->groups; ++g) {
        for (int32_t j = 0; j < cout_g; j += 2) {
          const int32_t o = g * cout_g + j;
          const int32_t two_channels = j + 1 < cout_g;
          const int8_t *w0 = weights + o * wsize;
          const int8_t *w1 = two_channels ? w0 + wsize : w0;
          const int32_t b1 = bias[two_channels ? o + 1 : o];
          if (inside) {
            int32_t acc[4] = {bias[o], b1, bias[o], b1};
            qk_conv_interior(c, x0 + g * cin_g, x1 + g * cin_g, w0, w1, acc);
            qk_store_2x2(acc, rq, o, two_channels, out0, out1);
          } else {
            for (int32_t k = 0; k < 1 + two; ++k) {
              int32_t acc[4] = {bias[o], b1, bias[o], b1};
              qk_conv_border(c, input + g * cin_g, oy, ox + k, w0, w1, acc);
              qk_store_2x2(acc, rq, o, two_channels, k == 0 ? out0 : out1, 0);
            }
          }
        }
      }
    }
  }
  return QANAS_OK;
}
