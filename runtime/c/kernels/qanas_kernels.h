/* qanas int8 kernel library: channels-last (NHWC) int8 convolutions, pooling and
 * element-wise ops, bit-identical to the NumPy reference (compiler/reference).
 *
 * Layouts (docs/kernels.md): activations are NHWC int8 with batch 1; weights are packed
 * offline by compiler/kernels/packing.py:
 *   conv2d (incl. pointwise, grouped, stem): [out_c][kernel_h][kernel_w][in_c / groups]
 *     (OHWI), output channels group-major;
 *   depthwise: [kernel_h][kernel_w][in_c * depth_multiplier] (HWC), output channel
 *     o = c * depth_multiplier + m reads input channel c.
 * Biases are int32 with the input zero point folded in (the packing's `bias`):
 *   bias[o] = b[o] - input_zero_point * sum(w[o]),
 * so a kernel accumulates bias + sum(w * x) over the raw int8 inputs; window taps that
 * fall in the padding read the input zero point (they add zero_point * w), without a
 * padded copy of the input.
 *
 * Requantization (docs/int8-arithmetic.md): y = clamp(round_half_even(acc * M / 2^(31 -
 * shift)) + output_zero_point, qmin, qmax), one rounding; ReLU/ReLU6 are qmin/qmax.
 *
 * The ISA is chosen at compile time from the compiler's feature macros (qanas_kernels_isa()
 * names it): Helium (__ARM_FEATURE_MVE), the Arm DSP extension (__ARM_FEATURE_DSP), NEON
 * (__ARM_NEON, aarch64), AVX2 (__AVX2__), else portable C; -DQANAS_KERNELS_PORTABLE forces
 * portable C. Every path gives the same bytes.
 *
 * No function allocates; none keeps state between calls. All return QANAS_OK or
 * QANAS_ERROR_BAD_ARGUMENT (a NULL pointer or an inconsistent shape).
 */
#ifndef QANAS_KERNELS_H_
#define QANAS_KERNELS_H_

#include <stdint.h>

#include "qanas/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Per-output-channel requantization: arrays of length out_c (the packing broadcasts a
 * per-tensor scale); `shift` is the left shift of compiler.int8.quantize_multiplier. */
typedef struct {
  const int32_t *multiplier;
  const int32_t *shift;
  int32_t output_zero_point;
  int32_t qmin;
  int32_t qmax;
} qanas_requant_t;

/* Geometry of a convolution (conv2d and depthwise). Output size is given, not derived,
 * so the caller's (ONNX) rounding of the output size is kept; taps outside the input are
 * padding whatever pad_bottom/pad_right were. */
typedef struct {
  int32_t in_h, in_w, in_c;
  int32_t out_h, out_w, out_c;
  int32_t kernel_h, kernel_w;
  int32_t stride_h, stride_w;
  int32_t dilation_h, dilation_w;
  int32_t pad_top, pad_left;
  int32_t groups;           /* conv2d: in_c and out_c divisible by it; depthwise: ignored */
  int32_t depth_multiplier; /* depthwise: out_c == in_c * depth_multiplier; conv2d: ignored */
  int32_t input_zero_point;
} qanas_conv_params_t;

/* Average pooling. `rq.multiplier/shift` are indexed by the window's element count
 * (1 .. kernel_h * kernel_w, index 0 unused): quantize_multiplier(s_x / (s_y * count)).
 * With count_include_pad != 0 every window uses count kernel_h * kernel_w. */
typedef struct {
  int32_t in_h, in_w, channels;
  int32_t out_h, out_w;
  int32_t kernel_h, kernel_w;
  int32_t stride_h, stride_w;
  int32_t pad_top, pad_left;
  int32_t count_include_pad;
  int32_t input_zero_point;
} qanas_pool_params_t;

/* Quantized add/sub (compiler.int8.shared_shift_multipliers): y = clamp(round_half_even(
 * (Ma (a - za) +/- Mb (b - zb)) / 2^right_shift) + zy, qmin, qmax). */
typedef struct {
  int32_t a_zero_point, b_zero_point;
  int32_t a_multiplier, b_multiplier;
  int32_t right_shift; /* 1 .. 62 */
  int32_t subtract;    /* non-zero: a - b */
  int32_t output_zero_point, qmin, qmax;
} qanas_add_params_t;

/* Quantized mul: y = requantize((a - za)(b - zb), multiplier, shift). */
typedef struct {
  int32_t a_zero_point, b_zero_point;
  int32_t multiplier, shift;
  int32_t output_zero_point, qmin, qmax;
} qanas_mul_params_t;

/* The instruction set the library was built for: "mve", "dsp", "neon", "avx2", "portable". */
const char *qanas_kernels_isa(void);

/* 1x1 convolution, stride 1, no padding: a GEMM output[p][o] = requant(bias[o] +
 * sum_i weights[o][i] * input[p][i]) over `pixels` NHWC pixels. */
qanas_status_t qanas_pointwise_conv_s8(int32_t pixels, int32_t in_c, int32_t out_c,
                                       const int8_t *input, const int8_t *weights,
                                       const int32_t *bias, const qanas_requant_t *rq,
                                       int8_t *output);

/* k x k convolution (any stride/dilation/padding, grouped, 3-channel stems); a 1x1,
 * stride 1, unpadded, ungrouped one runs qanas_pointwise_conv_s8. */
qanas_status_t qanas_conv2d_s8(const qanas_conv_params_t *params, const int8_t *input,
                               const int8_t *weights, const int32_t *bias,
                               const qanas_requant_t *rq, int8_t *output);

/* Depthwise k x k convolution with a channel multiplier. */
qanas_status_t qanas_depthwise_conv2d_s8(const qanas_conv_params_t *params,
                                         const int8_t *input, const int8_t *weights,
                                         const int32_t *bias, const qanas_requant_t *rq,
                                         int8_t *output);

/* Average pooling over k x k windows of x - input_zero_point (padding adds 0). */
qanas_status_t qanas_avg_pool2d_s8(const qanas_pool_params_t *params, const int8_t *input,
                                   const qanas_requant_t *rq, int8_t *output);

/* Global average pooling: one output per channel; rq has one multiplier/shift
 * (s_x / (s_y * height * width)). */
qanas_status_t qanas_global_avg_pool_s8(int32_t height, int32_t width, int32_t channels,
                                        int32_t input_zero_point, const int8_t *input,
                                        const qanas_requant_t *rq, int8_t *output);

/* Element-wise a +/- b over `count` elements; with b_channels > 0, b is one vector of
 * b_channels values broadcast over the pixels of a (NHWC: index i % b_channels). */
qanas_status_t qanas_add_s8(int32_t count, const int8_t *a, const int8_t *b,
                            int32_t b_channels, const qanas_add_params_t *params,
                            int8_t *output);

/* Element-wise a * b, broadcasting b like qanas_add_s8. */
qanas_status_t qanas_mul_s8(int32_t count, const int8_t *a, const int8_t *b,
                            int32_t b_channels, const qanas_mul_params_t *params,
                            int8_t *output);

#ifdef __cplusplus
}
#endif

#endif /* QANAS_KERNELS_H_ */
