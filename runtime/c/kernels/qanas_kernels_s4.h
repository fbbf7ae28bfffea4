/* qanas int4-weight convolutions: int8 NHWC activations, signed 4-bit weights packed two
 * per byte, bit-identical to the NumPy reference (compiler/reference computes int4 weights
 * as the integers -8..7; docs/int4-weights.md).
 *
 * Weight layout (compiler/kernels/packing_s4.py): one row per output channel, the row's
 * K = kernel_h * kernel_w * in_c / groups weights in OHWI order, padded with zeros to a
 * multiple of 8 (QANAS_S4_GROUP) and stored in K_padded / 2 bytes. Each group of 8
 * weights w0..w7 is one 32-bit word whose byte i holds w_i in its low nibble and w_(i+4)
 * in its high nibble: masking the word's high nibbles (and, shifted left by 4, its low
 * ones) and sign-extending bytes 0/2 and 1/3 (SXTB16, SXTB16 ROR 8) gives the halfword
 * pairs (w0, w2), (w1, w3), (w4, w6), (w5, w7), times 16, that meet the input's own SXTB16
 * pairs (x0, x2), (x1, x3), ... in SMLAD; the 16 leaves the sum exactly (an arithmetic
 * shift right by 4).
 *
 * Biases, requantization, padding (taps in the padding read the input zero point) and
 * the geometry struct are those of the int8 library (qanas_kernels.h). Every ISA path
 * (Helium; DSP, also on Helium cores for longer rows; AVX2; portable C, also on NEON
 * hosts) gives the same bytes.
 * No function allocates; all return QANAS_OK or QANAS_ERROR_BAD_ARGUMENT (NULL
 * pointers, an inconsistent shape, a k x k window of more than QANAS_S4_PATCH_MAX
 * weights, or a row longer than QANAS_S4_MAX_DEPTH).
 */
#ifndef QANAS_KERNELS_S4_H_
#define QANAS_KERNELS_S4_H_

#include <stdint.h>

#include "qanas_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Weights per packed 32-bit word (a row is padded to a multiple of it). */
#define QANAS_S4_GROUP 8
/* Largest window (kernel_h * kernel_w * in_c / groups) of qanas_conv2d_s4: two windows
 * are gathered on the stack (2 x 1152 bytes). */
#define QANAS_S4_PATCH_MAX 1152
/* Longest row: the 16-times-scaled sums stay below 2^31 (128 * 8 * 16 * depth). */
#define QANAS_S4_MAX_DEPTH 65536

/* Bytes of one packed weight row of `depth` weights. */
static inline int32_t qanas_s4_row_bytes(int32_t depth) {
  return (depth + QANAS_S4_GROUP - 1) / QANAS_S4_GROUP * (QANAS_S4_GROUP / 2);
}

/* 1x1 convolution, stride 1, no padding: output[p][o] = requant(bias[o] + sum_i
 * w[o][i] * input[p][i]) over `pixels` NHWC pixels; rows of qanas_s4_row_bytes(in_c). */
qanas_status_t qanas_pointwise_conv_s4(int32_t pixels, int32_t in_c, int32_t out_c,
                                       const int8_t *input, const uint8_t *weights,
                                       const int32_t *bias, const qanas_requant_t *rq,
                                       int8_t *output);

/* k x k convolution (any stride/dilation/padding, grouped): each window is gathered
 * (padding filled with the input zero point) and multiplied against the rows of its
 * group; a 1x1, stride 1, unpadded, ungrouped one runs qanas_pointwise_conv_s4. */
qanas_status_t qanas_conv2d_s4(const qanas_conv_params_t *params, const int8_t *input,
                               const uint8_t *weights, const int32_t *bias,
                               const qanas_requant_t *rq, int8_t *output);

#ifdef __cplusplus
}
#endif

#endif /* QANAS_KERNELS_S4_H_ */
