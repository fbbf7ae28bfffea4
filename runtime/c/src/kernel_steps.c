/* Step adapters between model.c's step table and the int8 kernel library
 * (qanas/kernel_steps.h). */
#include "qanas/kernel_steps.h"

#include <stdlib.h>
#include <string.h>

#include "dlpack/dlpack.h"
#include "qanas/workspace.h"
#include "qanas_kernels_s4.h"
#include "tvm/ffi/c_api.h"

/* The data of packed argument `i` (a DLTensor). */
static void *Data(void *args, int32_t i) {
  const TVMFFIAny *any = (const TVMFFIAny *)args;
  DLTensor *tensor = (DLTensor *)any[i].v_ptr;
  return (uint8_t *)tensor->data + tensor->byte_offset;
}

static int32_t Result(qanas_status_t status) { return status == QANAS_OK ? 0 : -1; }

/* Helium-packed weights (8-row x 16-byte blocks per group) as OHWI rows, for a build of a
 * cortex-m55 project on a hosted machine without Helium (the host reference build of that
 * project): the caller frees the copy. NULL when out of memory, and always on 32-bit Arm
 * (a bare-metal build: a cortex-m55 project is built for Helium there). */
static int8_t *OhwiFromMve(const qanas_conv_params_t *p, const int8_t *packed) {
#if defined(__arm__)
  (void)p;
  (void)packed;
  return NULL;
#else
  const int32_t groups = p->groups > 0 ? p->groups : 1;
  const int32_t rows = p->out_c / groups;
  const int32_t k = p->kernel_h * p->kernel_w * (p->in_c / groups);
  const int32_t rows_padded = (rows + 7) / 8 * 8, k_padded = (k + 15) / 16 * 16;
  int8_t *out = (int8_t *)malloc((size_t)p->out_c * (size_t)k);
  if (out == NULL) {
    return NULL;
  }
  for (int32_t g = 0; g < groups; ++g) {
    const int8_t *block = packed + (size_t)g * (size_t)rows_padded * (size_t)k_padded;
    for (int32_t r = 0; r < rows; ++r) {
      for (int32_t j = 0; j < k; ++j) {
        const size_t at = ((size_t)(r / 8) * (size_t)(k_padded / 16) + (size_t)(j / 16)) * 128u +
                          (size_t)(r % 8) * 16u + (size_t)(j % 16);
        out[((size_t)g * (size_t)rows + (size_t)r) * (size_t)k + (size_t)j] = block[at];
      }
    }
  }
  return out;
#endif
}

typedef qanas_status_t (*ConvFn)(const qanas_conv_step_t *step, const int8_t *input,
                                 const int8_t *weights, const int32_t *bias,
                                 const qanas_requant_t *rq, int8_t *output);

static qanas_status_t Conv2d(const qanas_conv_step_t *s, const int8_t *input,
                             const int8_t *weights, const int32_t *bias,
                             const qanas_requant_t *rq, int8_t *output) {
  return qanas_conv2d_s8(&s->conv, input, weights, bias, rq, output);
}

static qanas_status_t Pointwise(const qanas_conv_step_t *s, const int8_t *input,
                                const int8_t *weights, const int32_t *bias,
                                const qanas_requant_t *rq, int8_t *output) {
  return qanas_pointwise_conv_s8(s->conv.in_h * s->conv.in_w, s->conv.in_c, s->conv.out_c,
                                 input, weights, bias, rq, output);
}

static qanas_status_t Depthwise(const qanas_conv_step_t *s, const int8_t *input,
                                const int8_t *weights, const int32_t *bias,
                                const qanas_requant_t *rq, int8_t *output) {
  return qanas_depthwise_conv2d_s8(&s->conv, input, weights, bias, rq, output);
}

static int32_t ConvStep(ConvFn fn, void *self, void *args, int32_t num_args) {
  const qanas_conv_step_t *s = (const qanas_conv_step_t *)self;
  if (s == NULL || num_args != 6) {
    return -1;
  }
  const qanas_requant_t rq = {(const int32_t *)Data(args, 3), (const int32_t *)Data(args, 4),
                              s->output_zero_point, s->qmin, s->qmax};
  const int8_t *weights = (const int8_t *)Data(args, 1);
  int8_t *unpacked = NULL;
  if (s->weights_mve && strcmp(qanas_kernels_isa(), "mve") != 0) {
    unpacked = OhwiFromMve(&s->conv, weights);
    if (unpacked == NULL) {
      return -1;
    }
    weights = unpacked;
  }
  const qanas_status_t status = fn(s, (const int8_t *)Data(args, 0), weights,
                                   (const int32_t *)Data(args, 2), &rq,
                                   (int8_t *)Data(args, 5));
  free(unpacked);
  return Result(status);
}

int32_t qanas_step_conv2d_s8(void *self, void *args, int32_t num_args, void *result) {
  (void)result;
  return ConvStep(Conv2d, self, args, num_args);
}

int32_t qanas_step_pointwise_conv_s8(void *self, void *args, int32_t num_args, void *result) {
  (void)result;
  return ConvStep(Pointwise, self, args, num_args);
}

int32_t qanas_step_depthwise_conv2d_s8(void *self, void *args, int32_t num_args,
                                       void *result) {
  (void)result;
  return ConvStep(Depthwise, self, args, num_args);
}

int32_t qanas_step_avg_pool2d_s8(void *self, void *args, int32_t num_args, void *result) {
  const qanas_pool_step_t *s = (const qanas_pool_step_t *)self;
  (void)result;
  if (s == NULL || num_args != 4) {
    return -1;
  }
  const qanas_requant_t rq = {(const int32_t *)Data(args, 1), (const int32_t *)Data(args, 2),
                              s->output_zero_point, s->qmin, s->qmax};
  return Result(qanas_avg_pool2d_s8(&s->pool, (const int8_t *)Data(args, 0), &rq,
                                    (int8_t *)Data(args, 3)));
}

int32_t qanas_step_global_avg_pool_s8(void *self, void *args, int32_t num_args, void *result) {
  const qanas_global_pool_step_t *s = (const qanas_global_pool_step_t *)self;
  (void)result;
  if (s == NULL || num_args != 2) {
    return -1;
  }
  const qanas_requant_t rq = {&s->multiplier, &s->shift, s->output_zero_point, s->qmin,
                              s->qmax};
  return Result(qanas_global_avg_pool_s8(s->height, s->width, s->channels, s->input_zero_point,
                                         (const int8_t *)Data(args, 0), &rq,
                                         (int8_t *)Data(args, 1)));
}

int32_t qanas_step_add_s8(void *self, void *args, int32_t num_args, void *result) {
  const qanas_add_step_t *s = (const qanas_add_step_t *)self;
  (void)result;
  if (s == NULL || num_args != 3) {
    return -1;
  }
  return Result(qanas_add_s8(s->count, (const int8_t *)Data(args, 0),
                             (const int8_t *)Data(args, 1), s->b_channels, &s->add,
                             (int8_t *)Data(args, 2)));
}

int32_t qanas_step_mul_s8(void *self, void *args, int32_t num_args, void *result) {
  const qanas_mul_step_t *s = (const qanas_mul_step_t *)self;
  (void)result;
  if (s == NULL || num_args != 3) {
    return -1;
  }
  return Result(qanas_mul_s8(s->count, (const int8_t *)Data(args, 0),
                             (const int8_t *)Data(args, 1), s->b_channels, &s->mul,
                             (int8_t *)Data(args, 2)));
}

int32_t qanas_step_resize_s8(void *self, void *args, int32_t num_args, void *result) {
  const qanas_resize_step_t *s = (const qanas_resize_step_t *)self;
  (void)result;
  if (s == NULL || num_args != 4) {
    return -1;
  }
  return Result(qanas_resize_s8(&s->resize, (const int32_t *)Data(args, 1),
                                (const int32_t *)Data(args, 2), (const int8_t *)Data(args, 0),
                                (int8_t *)Data(args, 3)));
}

/* A 1x1 conv of the fused block as OHWI rows (OhwiFromMve) when its weights are in
 * Helium's blocks and this build does not run Helium; else `weights` itself. Sets *copy to
 * the buffer to free (NULL when none); NULL when out of memory. */
static const int8_t *IrbWeights(const qanas_irb_step_t *s, int32_t in_c, int32_t out_c,
                                int32_t groups, const int8_t *weights, int8_t **copy) {
  *copy = NULL;
  if (!s->weights_mve || strcmp(qanas_kernels_isa(), "mve") == 0) {
    return weights;
  }
  qanas_conv_params_t p;
  memset(&p, 0, sizeof(p));
  p.in_c = in_c;
  p.out_c = out_c;
  p.kernel_h = p.kernel_w = 1;
  p.groups = groups;
  *copy = OhwiFromMve(&p, weights);
  return *copy;
}

int32_t qanas_step_inverted_residual_s8(void *self, void *args, int32_t num_args,
                                        void *result) {
  const qanas_irb_step_t *s = (const qanas_irb_step_t *)self;
  (void)result;
  if (s == NULL) {
    return -1;
  }
  const int32_t expected = 10 + (s->has_expand ? 4 : 0) + (s->irb.residual_rescale ? 2 : 0);
  if (num_args != expected) {
    return -1;
  }
  qanas_irb_params_t p = s->irb;
  int32_t i = 1;
  int8_t *expand_copy = NULL, *project_copy = NULL;
  if (s->has_expand) {
    if (s->expand_s4) {
      p.expand_weights_s4 = (const uint8_t *)Data(args, i);
    } else {
      p.expand_weights = IrbWeights(s, p.in_c, p.expanded_c, p.expand_groups,
                                    (const int8_t *)Data(args, i), &expand_copy);
    }
    p.expand_bias = (const int32_t *)Data(args, i + 1);
    p.expand_rq.multiplier = (const int32_t *)Data(args, i + 2);
    p.expand_rq.shift = (const int32_t *)Data(args, i + 3);
    i += 4;
  }
  p.depthwise_weights = (const int8_t *)Data(args, i);
  p.depthwise_bias = (const int32_t *)Data(args, i + 1);
  p.depthwise_rq.multiplier = (const int32_t *)Data(args, i + 2);
  p.depthwise_rq.shift = (const int32_t *)Data(args, i + 3);
  if (s->project_s4) {
    p.project_weights_s4 = (const uint8_t *)Data(args, i + 4);
  } else {
    p.project_weights = IrbWeights(s, p.expanded_c, p.out_c, p.project_groups,
                                   (const int8_t *)Data(args, i + 4), &project_copy);
  }
  p.project_bias = (const int32_t *)Data(args, i + 5);
  p.project_rq.multiplier = (const int32_t *)Data(args, i + 6);
  p.project_rq.shift = (const int32_t *)Data(args, i + 7);
  i += 8;
  if (p.residual_rescale) {
    p.residual_rq.multiplier = (const int32_t *)Data(args, i);
    p.residual_rq.shift = (const int32_t *)Data(args, i + 1);
    i += 2;
  }
  int32_t status = -1;
  const int32_t needed = qanas_inverted_residual_scratch_bytes(&p);
  void *scratch = NULL;
  if (needed >= 0 && needed <= s->scratch_bytes &&
      (p.project_weights != NULL || p.project_weights_s4 != NULL) &&
      (!s->has_expand || p.expand_weights != NULL || p.expand_weights_s4 != NULL)) {
    scratch = TVMBackendAllocWorkspace(kDLCPU, 0, (uint64_t)s->scratch_bytes, 0, 8);
  }
  if (scratch != NULL) {
    status = Result(qanas_inverted_residual_s8(&p, (const int8_t *)Data(args, 0),
                                               (int8_t *)scratch, (int8_t *)Data(args, i)));
    (void)TVMBackendFreeWorkspace(kDLCPU, 0, scratch);
  }
  free(expand_copy);
  free(project_copy);
  return status;
}

/* One axis of a patch stage's tile: the range [lo, hi) of every layer's input, then of the
 * tile itself (ranges[layer_count]). */
typedef struct {
  int32_t lo[QANAS_PATCH_MAX_LAYERS + 1];
  int32_t hi[QANAS_PATCH_MAX_LAYERS + 1];
} PatchRanges;

/* Tile `t` of `n` over `extent`: ceil(extent / n) each, the last ones ending at the edge
 * and overlapping the one before (compiler/passes/patch_stage.py tiles). */
static void PatchTile(int32_t extent, int32_t n, int32_t t, int32_t *lo, int32_t *hi) {
  const int32_t count = n < extent ? n : extent;
  const int32_t size = (extent + count - 1) / count;
  const int32_t start = t * size < extent - size ? t * size : extent - size;
  *lo = start;
  *hi = start + size;
}

/* From the tile inwards, the input range of each layer along rows (axis 0) or columns:
 * the taps of its output range, clipped to the tensor (the rest is padding). */
static void PatchRangesOf(const qanas_patch_step_t *s, int32_t axis, int32_t lo, int32_t hi,
                          PatchRanges *r) {
  const int32_t n = s->layer_count;
  r->lo[n] = lo;
  r->hi[n] = hi;
  for (int32_t l = n - 1; l >= 0; --l) {
    const qanas_conv_params_t *c = &s->layers[l].conv;
    const int32_t stride = axis == 0 ? c->stride_h : c->stride_w;
    const int32_t dilation = axis == 0 ? c->dilation_h : c->dilation_w;
    const int32_t kernel = axis == 0 ? c->kernel_h : c->kernel_w;
    const int32_t pad = axis == 0 ? c->pad_top : c->pad_left;
    const int32_t size = axis == 0 ? c->in_h : c->in_w;
    const int32_t start = r->lo[l + 1] * stride - pad;
    const int32_t stop = (r->hi[l + 1] - 1) * stride - pad + (kernel - 1) * dilation + 1;
    r->lo[l] = start > 0 ? start : 0;
    r->hi[l] = stop < size ? stop : size;
  }
}

/* Layer `l` on the tile's regions: its input region in `input`, output region to `output`. */
static qanas_status_t PatchLayer(const qanas_patch_step_t *s, int32_t l, const PatchRanges *rows,
                                 const PatchRanges *cols, const int8_t *weights,
                                 const int32_t *bias, const qanas_requant_t *rq,
                                 const int8_t *input, int8_t *output) {
  const qanas_conv_params_t *whole = &s->layers[l].conv;
  qanas_conv_params_t p = *whole;
  p.in_h = rows->hi[l] - rows->lo[l];
  p.in_w = cols->hi[l] - cols->lo[l];
  p.out_h = rows->hi[l + 1] - rows->lo[l + 1];
  p.out_w = cols->hi[l + 1] - cols->lo[l + 1];
  /* the first tap of the region's first output, relative to the input region */
  p.pad_top = rows->lo[l] - (rows->lo[l + 1] * whole->stride_h - whole->pad_top);
  p.pad_left = cols->lo[l] - (cols->lo[l + 1] * whole->stride_w - whole->pad_left);
  switch (s->kinds[l]) {
    case QANAS_PATCH_POINTWISE:
      return qanas_pointwise_conv_s8(p.out_h * p.out_w, p.in_c, p.out_c, input, weights, bias,
                                     rq, output);
    case QANAS_PATCH_DEPTHWISE:
      return qanas_depthwise_conv2d_s8(&p, input, weights, bias, rq, output);
    case QANAS_PATCH_POINTWISE_S4:
      return qanas_pointwise_conv_s4(p.out_h * p.out_w, p.in_c, p.out_c, input,
                                     (const uint8_t *)weights, bias, rq, output);
    case QANAS_PATCH_CONV_S4:
      return qanas_conv2d_s4(&p, input, (const uint8_t *)weights, bias, rq, output);
    default:
      return qanas_conv2d_s8(&p, input, weights, bias, rq, output);
  }
}

/* Bytes of region `l` (the model input's for 0, layer l - 1's output after) of a tile,
 * rounded up to 16. */
static size_t PatchRegionBytes(const qanas_patch_step_t *s, int32_t in_c, int32_t l,
                               const PatchRanges *rows, const PatchRanges *cols) {
  const int32_t channels = l == 0 ? in_c : s->layers[l - 1].conv.out_c;
  const size_t bytes =
      (size_t)(rows->hi[l] - rows->lo[l]) * (size_t)(cols->hi[l] - cols->lo[l]) * (size_t)channels;
  return (bytes + 15u) & ~(size_t)15u;
}

/* One tile: gather the model input's region channels-last at the bottom of `scratch`, run
 * the layers, each reading at one end of the scratch and writing at the other, and copy
 * the last region into the output. */
static qanas_status_t PatchTileRun(const qanas_patch_step_t *s, void *args,
                                   const int8_t *const *weights, const PatchRanges *rows,
                                   const PatchRanges *cols, int8_t *scratch) {
  const DLTensor *in = (const DLTensor *)((const TVMFFIAny *)args)[0].v_ptr;
  const int32_t in_c = (int32_t)in->shape[1], in_h = (int32_t)in->shape[2];
  const int32_t in_w = (int32_t)in->shape[3];
  const int8_t *x = (const int8_t *)Data(args, 0);
  const int32_t w0 = cols->hi[0] - cols->lo[0];
  int8_t *gathered = scratch;
  for (int32_t y = rows->lo[0]; y < rows->hi[0]; ++y) {
    for (int32_t c = 0; c < in_c; ++c) {
      const int8_t *src = x + ((size_t)c * (size_t)in_h + (size_t)y) * (size_t)in_w;
      int8_t *dst = gathered + (size_t)(y - rows->lo[0]) * (size_t)w0 * (size_t)in_c + c;
      for (int32_t i = cols->lo[0]; i < cols->hi[0]; ++i) {
        dst[(size_t)(i - cols->lo[0]) * (size_t)in_c] = src[i];
      }
    }
  }
  const int32_t n = s->layer_count;
  const int8_t *input = gathered;
  int8_t *output = scratch;
  for (int32_t l = 0; l < n; ++l) {
    const qanas_conv_step_t *layer = &s->layers[l];
    const qanas_requant_t rq = {(const int32_t *)Data(args, 3 + 4 * l),
                                (const int32_t *)Data(args, 4 + 4 * l),
                                layer->output_zero_point, layer->qmin, layer->qmax};
    output = l % 2 == 0
                 ? scratch + (size_t)s->scratch_bytes - PatchRegionBytes(s, in_c, l + 1, rows, cols)
                 : scratch;
    const qanas_status_t status = PatchLayer(
        s, l, rows, cols, weights[l], (const int32_t *)Data(args, 2 + 4 * l), &rq, input, output);
    if (status != QANAS_OK) {
      return status;
    }
    input = output;
  }
  const qanas_conv_params_t *last = &s->layers[n - 1].conv;
  const int32_t w = cols->hi[n] - cols->lo[n];
  const size_t row_bytes = (size_t)w * (size_t)last->out_c;
  int8_t *out = (int8_t *)Data(args, 1 + 4 * n);
  for (int32_t y = rows->lo[n]; y < rows->hi[n]; ++y) {
    memcpy(out + ((size_t)y * (size_t)last->out_w + (size_t)cols->lo[n]) * (size_t)last->out_c,
           input + (size_t)(y - rows->lo[n]) * row_bytes, row_bytes);
  }
  return QANAS_OK;
}

/* Whether every layer's input and output regions of every tile fit the scratch side by side. */
static int32_t PatchRegionsFit(const qanas_patch_step_t *s, int32_t in_c) {
  const qanas_conv_params_t *last = &s->layers[s->layer_count - 1].conv;
  for (int32_t ty = 0; ty < s->patches && ty < last->out_h; ++ty) {
    for (int32_t tx = 0; tx < s->patches && tx < last->out_w; ++tx) {
      PatchRanges rows, cols;
      int32_t lo, hi;
      PatchTile(last->out_h, s->patches, ty, &lo, &hi);
      PatchRangesOf(s, 0, lo, hi, &rows);
      PatchTile(last->out_w, s->patches, tx, &lo, &hi);
      PatchRangesOf(s, 1, lo, hi, &cols);
      for (int32_t l = 0; l < s->layer_count; ++l) {
        if (PatchRegionBytes(s, in_c, l, &rows, &cols) +
                PatchRegionBytes(s, in_c, l + 1, &rows, &cols) >
            (size_t)s->scratch_bytes) {
          return 0;
        }
      }
    }
  }
  return 1;
}

int32_t qanas_step_patch_stage_s8(void *self, void *args, int32_t num_args, void *result) {
  const qanas_patch_step_t *s = (const qanas_patch_step_t *)self;
  (void)result;
  if (s == NULL || s->layer_count < 1 || s->layer_count > QANAS_PATCH_MAX_LAYERS ||
      s->patches < 1 || num_args != 2 + 4 * s->layer_count) {
    return -1;
  }
  const DLTensor *in = (const DLTensor *)((const TVMFFIAny *)args)[0].v_ptr;
  if (in->ndim != 4 || s->scratch_bytes % 16 != 0 ||
      !PatchRegionsFit(s, (int32_t)in->shape[1])) {
    return -1;
  }
  const int8_t *weights[QANAS_PATCH_MAX_LAYERS];
  int8_t *copies[QANAS_PATCH_MAX_LAYERS] = {NULL};
  int32_t status = 0;
  for (int32_t l = 0; l < s->layer_count; ++l) {
    weights[l] = (const int8_t *)Data(args, 1 + 4 * l);
    if (s->layers[l].weights_mve && strcmp(qanas_kernels_isa(), "mve") != 0) {
      copies[l] = OhwiFromMve(&s->layers[l].conv, weights[l]);
      weights[l] = copies[l];
      status = copies[l] == NULL ? -1 : status;
    }
  }
  int8_t *scratch = NULL;
  if (status == 0) {
    scratch = (int8_t *)TVMBackendAllocWorkspace(kDLCPU, 0, (uint64_t)s->scratch_bytes, 0, 8);
    status = scratch == NULL ? -1 : 0;
  }
  const qanas_conv_params_t *last = &s->layers[s->layer_count - 1].conv;
  for (int32_t ty = 0; status == 0 && ty < s->patches && ty < last->out_h; ++ty) {
    for (int32_t tx = 0; status == 0 && tx < s->patches && tx < last->out_w; ++tx) {
      PatchRanges rows, cols;
      int32_t lo, hi;
      PatchTile(last->out_h, s->patches, ty, &lo, &hi);
      PatchRangesOf(s, 0, lo, hi, &rows);
      PatchTile(last->out_w, s->patches, tx, &lo, &hi);
      PatchRangesOf(s, 1, lo, hi, &cols);
      status = Result(PatchTileRun(s, args, weights, &rows, &cols, scratch));
    }
  }
  if (scratch != NULL) {
    (void)TVMBackendFreeWorkspace(kDLCPU, 0, scratch);
  }
  for (int32_t l = 0; l < s->layer_count; ++l) {
    free(copies[l]);
  }
  return status;
}

int32_t qanas_step_softmax_s8(void *self, void *args, int32_t num_args, void *result) {
  const qanas_softmax_step_t *s = (const qanas_softmax_step_t *)self;
  (void)result;
  if (s == NULL || num_args != 2) {
    return -1;
  }
  return Result(qanas_softmax_s8(&s->softmax, (const int8_t *)Data(args, 0),
                                 (int8_t *)Data(args, 1)));
}

int32_t qanas_step_matmul_s8(void *self, void *args, int32_t num_args, void *result) {
  const qanas_matmul_step_t *s = (const qanas_matmul_step_t *)self;
  (void)result;
  if (s == NULL || num_args != 5) {
    return -1;
  }
  const qanas_requant_t rq = {(const int32_t *)Data(args, 2), (const int32_t *)Data(args, 3),
                              s->output_zero_point, s->qmin, s->qmax};
  return Result(qanas_matmul_s8(&s->matmul, (const int8_t *)Data(args, 0),
                                (const int8_t *)Data(args, 1), &rq, (int8_t *)Data(args, 4)));
}
