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
 * padded copy of the input. The softmax (attention) reads rows of its last axis, whatever
 * the layout.
 *
 * Requantization (docs/int8-arithmetic.md): y = clamp(round_half_even(acc * M / 2^(31 -
 * shift)) + output_zero_point, qmin, qmax), one rounding; ReLU/ReLU6 are qmin/qmax.
 *
 * The ISA is chosen at compile time from the compiler's feature macros (qanas_kernels_isa()
 * names it): Helium (__ARM_FEATURE_MVE), the Arm DSP extension (__ARM_FEATURE_DSP), NEON
 * (__ARM_NEON, aarch64), AVX2 (__AVX2__), else portable C; -DQANAS_KERNELS_PORTABLE forces
 * portable C. Every path gives the same bytes.
 *
 * No function allocates (the fused inverted residual takes a caller's scratch buffer);
 * none keeps state between calls. All return QANAS_OK or
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

/* Softmax over the last axis of `rows` x `depth` int8 values (TFLite Micro's fixed-point
 * softmax; compiler/passes/softmax_kernel.py SoftmaxParams gives each field): the
 * difference to the row's maximum, scaled to Q5.26 by input_multiplier * 2^input_left_shift
 * (entries below diff_min output the zero point), exp in Q0.31, the sum's reciprocal, and
 * one rounding to the output grid with output_multiplier and a right shift of
 * output_right_shift plus the row's bits over unit. */
typedef struct {
  int32_t rows, depth;
  int32_t input_multiplier, input_left_shift, diff_min;
  int32_t output_multiplier, output_right_shift;
  int32_t output_zero_point, qmin, qmax;
} qanas_softmax_params_t;

/* Batched int8 matmul of two activations (attention's Q·Kᵀ and softmax·V):
 *   out[t][m][n] = requant(sum_k (a[t][m][k] - a_zero_point) (b'[t][k][n] - b_zero_point))
 * for batch t, with a [batch][m][k] and b [batch][k][n], or [batch][n][k] when
 * transpose_b (b' = bᵀ: a head split's transpose the caller need not make); output
 * [batch][m][n]. rq holds n multipliers and shifts (one per output column; a per-tensor
 * scale repeated). k <= QANAS_MATMUL_MAX_K (the int32 sums), and k <= 1024 without
 * transpose_b (B's columns are transposed through a stack panel). */
#define QANAS_MATMUL_MAX_K 32767
typedef struct {
  int32_t batch, m, k, n;
  int32_t transpose_b;
  int32_t a_zero_point, b_zero_point;
} qanas_matmul_params_t;

qanas_status_t qanas_matmul_s8(const qanas_matmul_params_t *params, const int8_t *a,
                               const int8_t *b, const qanas_requant_t *rq, int8_t *output);

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

/* Int8 resize of an NHWC tensor (batch 1) through the compiler's exact source tables
 * (compiler/passes/resize_spec.py, every ONNX coordinate and nearest mode):
 *   QANAS_RESIZE_BILINEAR: rows is int32 [4][out_h] (i0, i1, w0, w1 per output row),
 *     cols [4][out_w] the same per output column; the weights of each axis share one
 *     denominator (D_h = w0 + w1, D_w), 255 D_h D_w < 2^31.
 *     y = requant(sum over the 2 x 2 taps of (x - input_zero_point) W V), with multiplier
 *     and shift for s_x / (s_y D_h D_w);
 *   QANAS_RESIZE_NEAREST: rows [out_h] and cols [out_w] are source indices; y = x, or
 *     requant(x - input_zero_point) when `rescale`.
 * Every index is inside the input (the tables are trusted, like weights). `out_nchw`
 * writes the output NCHW (a model output) instead of NHWC. */
#define QANAS_RESIZE_NEAREST 0
#define QANAS_RESIZE_BILINEAR 1
typedef struct {
  int32_t in_h, in_w, channels, out_h, out_w;
  int32_t method;    /* QANAS_RESIZE_NEAREST or QANAS_RESIZE_BILINEAR */
  int32_t rescale;   /* nearest: requantize (else a copy) */
  int32_t out_nchw;
  int32_t input_zero_point;
  int32_t multiplier, shift; /* compiler.int8.quantize_multiplier */
  int32_t output_zero_point, qmin, qmax;
} qanas_resize_params_t;

qanas_status_t qanas_resize_s8(const qanas_resize_params_t *params, const int32_t *rows,
                               const int32_t *cols, const int8_t *input, int8_t *output);

/* Element-wise a +/- b over `count` elements; with b_channels > 0, b is one vector of
 * b_channels values broadcast over the pixels of a (NHWC: index i % b_channels). */
qanas_status_t qanas_add_s8(int32_t count, const int8_t *a, const int8_t *b,
                            int32_t b_channels, const qanas_add_params_t *params,
                            int8_t *output);

/* Element-wise a * b, broadcasting b like qanas_add_s8. */
qanas_status_t qanas_mul_s8(int32_t count, const int8_t *a, const int8_t *b,
                            int32_t b_channels, const qanas_mul_params_t *params,
                            int8_t *output);

/* Int8 softmax of each row (see qanas_softmax_params_t); output may not overlap input. */
qanas_status_t qanas_softmax_s8(const qanas_softmax_params_t *params, const int8_t *input,
                                int8_t *output);

/* One inverted residual block (MobileNetV2 / MBConv / SqueezeNAS), fused, NHWC, batch 1:
 *   E = requant(conv1x1_expand(X))            expand_weights NULL: no expansion, E = X
 *   D = requant(depthwise_kxk(E))             square kernel, stride, dilation; taps in the
 *                                             padding read E's zero point (no padded copy)
 *   P = requant(conv1x1_project(D))
 *   Y = P, or with `residual`: Y = add(R, P), R = X, or requant(X - input_zero_point)
 *       with residual_rq when `residual_rescale` (X rescaled to the add's scale)
 * computed output row by output row: the expanded rows the depthwise reads live in a ring
 * of (kernel - 1) * dilation + 1 rows (each expanded row is computed once), the depthwise
 * and project outputs 8 pixels at a time; the expanded tensor never exists in full.
 * Everything lives in `scratch` (qanas_inverted_residual_scratch_bytes; compiler.kernels.irb.scratch_bytes
 * gives the same number). Weights and biases are packed by compiler/kernels/irb.py
 * (pack_conv / pack_depthwise layouts, each bias with its stage's input zero point
 * folded in: X's for expand, E's for the depthwise, D's for project). A 1x1 stage with
 * 4-bit weights gives expand_weights_s4 / project_weights_s4 (rows packed two weights per
 * byte, qanas_kernels_s4.h) in place of expand_weights / project_weights and runs the
 * int4 convolutions; the depthwise is int8. */
typedef struct {
  int32_t in_h, in_w, in_c;       /* X */
  int32_t expanded_c;             /* channels of E and D (in_c without expansion) */
  int32_t out_h, out_w, out_c;    /* Y (and P) */
  int32_t kernel, stride, dilation; /* depthwise, square, kernel <= 16 */
  int32_t pad_top, pad_left;      /* depthwise padding; bottom/right follow from out_h/w */
  int32_t input_zero_point;       /* X's zero point */
  /* expand 1x1 conv (weights NULL: none); expand_rq.output_zero_point is E's zero point,
   * the value of the depthwise's padding */
  int32_t expand_groups;
  const int8_t *expand_weights;
  const int32_t *expand_bias;
  qanas_requant_t expand_rq;
  /* depthwise k x k, [k][k][expanded_c] weights */
  const int8_t *depthwise_weights;
  const int32_t *depthwise_bias;
  qanas_requant_t depthwise_rq;
  /* project 1x1 conv */
  int32_t project_groups;
  const int8_t *project_weights;
  const int32_t *project_bias;
  qanas_requant_t project_rq;
  /* residual add (non-zero `residual`: needs stride 1 and out == in shape) */
  int32_t residual;
  int32_t residual_rescale;       /* non-zero: R = requant(X - input_zero_point, residual_rq) */
  qanas_requant_t residual_rq;    /* one multiplier / shift */
  qanas_add_params_t add;         /* a = R (a_zero_point: R's), b = P (b_zero_point: P's) */
  /* int4 1x1 stages (NULL: int8): packed rows, the stage's int8 weights NULL */
  const uint8_t *expand_weights_s4;
  const uint8_t *project_weights_s4;
} qanas_irb_params_t;

/* Bytes of scratch qanas_inverted_residual_s8 needs (-1 for inconsistent params):
 * ((kernel - 1) * dilation + 1) rows of (pad_left + in_w + pad_right) * expanded_c bytes
 * (the ring, pad_right = max(0, (out_w - 1) * stride + (kernel - 1) * dilation + 1 -
 * pad_left - in_w)) + min(out_w, 8) * expanded_c (the depthwise output of 8 pixels) +
 * min(out_w, 8) * out_c with a residual (their project output, so that the block can run
 * in place). */
int32_t qanas_inverted_residual_scratch_bytes(const qanas_irb_params_t *params);

/* The fused block: Y (out_h x out_w x out_c) from X (in_h x in_w x in_c). `scratch` holds
 * qanas_inverted_residual_scratch_bytes(params) bytes (any alignment) and must not
 * overlap input or output. `output` may be `input` itself (in place) when the block has
 * a residual and pad_top <= (kernel - 1) * dilation (every "same"-padded block): each X
 * row is last read before the Y row that overwrites it. */
qanas_status_t qanas_inverted_residual_s8(const qanas_irb_params_t *params,
                                          const int8_t *input, int8_t *scratch,
                                          int8_t *output);

#ifdef __cplusplus
}
#endif

#endif /* QANAS_KERNELS_H_ */
