/* Step adapters of the int4-weight convolutions (runtime/kernels/qanas_kernels_s4.h), the
 * counterpart of qanas/kernel_steps.h: called by model.c's step table with the packed
 * calling convention, `self` a qanas_conv_step_t (weights_mve is 0: int4 rows have one
 * layout on every ISA), arguments input, packed weights, bias, multiplier, shift, output
 * (compiler/kernels/calls.py). An adapter returns 0, or -1 when the library refuses its
 * arguments. */
#ifndef QANAS_KERNEL_STEPS_S4_H_
#define QANAS_KERNEL_STEPS_S4_H_

#include <stdint.h>

#include "qanas/kernel_steps.h"
#include "qanas_kernels_s4.h"

#ifdef __cplusplus
extern "C" {
#endif

int32_t qanas_step_conv2d_s4(void *self, void *args, int32_t num_args, void *result);
int32_t qanas_step_pointwise_conv_s4(void *self, void *args, int32_t num_args, void *result);

#ifdef __cplusplus
}
#endif

#endif /* QANAS_KERNEL_STEPS_S4_H_ */
