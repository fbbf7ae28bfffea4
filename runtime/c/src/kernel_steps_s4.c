/* Step adapters of the int4-weight convolutions (qanas/kernel_steps_s4.h). */
#include "qanas/kernel_steps_s4.h"

#include "dlpack/dlpack.h"
#include "tvm/ffi/c_api.h"

/* The data of packed argument `i` (a DLTensor). */
static void *ArgData(void *args, int32_t i) {
  const TVMFFIAny *any = (const TVMFFIAny *)args;
  DLTensor *tensor = (DLTensor *)any[i].v_ptr;
  return (uint8_t *)tensor->data + tensor->byte_offset;
}

/* The step's parameters and requantization, or NULL for a malformed call. */
static const qanas_conv_step_t *ConvStepS4(void *self, int32_t num_args, void *args,
                                           qanas_requant_t *rq) {
  const qanas_conv_step_t *s = (const qanas_conv_step_t *)self;
  if (s == NULL || num_args != 6 || s->weights_mve) {
    return NULL;
  }
  rq->multiplier = (const int32_t *)ArgData(args, 3);
  rq->shift = (const int32_t *)ArgData(args, 4);
  rq->output_zero_point = s->output_zero_point;
  rq->qmin = s->qmin;
  rq->qmax = s->qmax;
  return s;
}

int32_t qanas_step_conv2d_s4(void *self, void *args, int32_t num_args, void *result) {
  qanas_requant_t rq;
  const qanas_conv_step_t *s = ConvStepS4(self, num_args, args, &rq);
  (void)result;
  if (s == NULL) {
    return -1;
  }
  return qanas_conv2d_s4(&s->conv, (const int8_t *)ArgData(args, 0),
                         (const uint8_t *)ArgData(args, 1), (const int32_t *)ArgData(args, 2),
                         &rq, (int8_t *)ArgData(args, 5)) == QANAS_OK ? 0 : -1;
}

int32_t qanas_step_pointwise_conv_s4(void *self, void *args, int32_t num_args, void *result) {
  qanas_requant_t rq;
  const qanas_conv_step_t *s = ConvStepS4(self, num_args, args, &rq);
  (void)result;
  if (s == NULL) {
    return -1;
  }
  return qanas_pointwise_conv_s4(s->conv.in_h * s->conv.in_w, s->conv.in_c, s->conv.out_c,
                                 (const int8_t *)ArgData(args, 0),
                                 (const uint8_t *)ArgData(args, 1),
                                 (const int32_t *)ArgData(args, 2), &rq,
                                 (int8_t *)ArgData(args, 5)) == QANAS_OK ? 0 : -1;
}
