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

typedef qanas_status_t (*ConvS4Fn)(const qanas_conv_params_t *conv, const int8_t *input,
                                   const uint8_t *weights, const int32_t *bias,
                                   const qanas_requant_t *rq, int8_t *output);

static qanas_status_t PointwiseS4(const qanas_conv_params_t *conv, const int8_t *input,
                                  const uint8_t *weights, const int32_t *bias,
                                  const qanas_requant_t *rq, int8_t *output) {
  return qanas_pointwise_conv_s4(conv->in_h * conv->in_w, conv->in_c, conv->out_c, input,
                                 weights, bias, rq, output);
}

/* Runs `fn` on a conv step's arguments (input, weights, bias, multiplier, shift, output). */
static int32_t ConvStepS4(ConvS4Fn fn, void *self, void *args, int32_t num_args) {
  const qanas_conv_step_t *s = (const qanas_conv_step_t *)self;
  if (s == NULL || num_args != 6 || s->weights_mve) {
    return -1;
  }
  const qanas_requant_t rq = {(const int32_t *)ArgData(args, 3), (const int32_t *)ArgData(args, 4),
                              s->output_zero_point, s->qmin, s->qmax};
  return fn(&s->conv, (const int8_t *)ArgData(args, 0), (const uint8_t *)ArgData(args, 1),
            (const int32_t *)ArgData(args, 2), &rq, (int8_t *)ArgData(args, 5)) == QANAS_OK
             ? 0
             : -1;
}

int32_t qanas_step_conv2d_s4(void *self, void *args, int32_t num_args, void *result) {
  (void)result;
  return ConvStepS4(qanas_conv2d_s4, self, args, num_args);
}

int32_t qanas_step_pointwise_conv_s4(void *self, void *args, int32_t num_args, void *result) {
  (void)result;
  return ConvStepS4(PointwiseS4, self, args, num_args);
}
