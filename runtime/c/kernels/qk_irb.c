/* The fused inverted residual (qanas_inverted_residual_s8): expand 1x1 -> depthwise k x k
 * -> project 1x1 (+ residual add), one output row at a time.
 *
 * The depthwise reads the expanded tensor E through a ring of `span` = (k - 1) * d + 1
 * rows, each padded left and right with E's zero point: padded row u (u = input row +
 * pad_top) lives in slot u % span. Rows are produced in order, each once, just before the
 * first output row that needs it; a row outside the input (the padding above and below)
 * is its slot filled with the zero point. Every depthwise window then lies inside the
 * ring, so an output row is qk_depthwise_row over k row pointers (the library's
 * depthwise micro-kernels), QK_IRB_CHUNK pixels at a time, each chunk then projected and
 * added to X right away; expand and project are the library's pointwise convolutions over
 * a row / a chunk of pixels: int8 (qk_conv.c), or int4 (qk_conv_s4.c) for a stage whose
 * weights come packed two per byte. */
#include "qanas_kernels_s4.h"
#include "qk_internal.h"

/* Largest depthwise kernel (rows of qk_depthwise_row's row-pointer array). */
#define QK_IRB_MAX_KERNEL 16
/* Output pixels per pass of depthwise -> project -> residual (even: the DSP pointwise
 * runs pixel pairs); the depthwise and project outputs exist for this many pixels. */
#define QK_IRB_CHUNK 8

/* The ring's shape: rows, and bytes of one padded row. */
typedef struct {
  int32_t span;      /* rows in the ring */
  int32_t pad_right; /* zero-point columns right of the input */
  int32_t row_bytes; /* (pad_left + in_w + pad_right) * expanded_c */
} qk_irb_ring_t;

static qk_irb_ring_t qk_irb_ring(const qanas_irb_params_t *p) {
  qk_irb_ring_t r;
  r.span = (p->kernel - 1) * p->dilation + 1;
  const int32_t right = (p->out_w - 1) * p->stride + r.span - p->pad_left - p->in_w;
  r.pad_right = right > 0 ? right : 0;
  r.row_bytes = (p->pad_left + p->in_w + r.pad_right) * p->expanded_c;
  return r;
}

static int32_t qk_requant_given(const qanas_requant_t *rq) {
  return rq->multiplier != 0 && rq->shift != 0;
}

/* A 1x1 conv stage: int8 or int4 weights (one of them), bias and requantization present,
 * groups dividing both channel counts; int4 rows within what the int4 kernels take. */
static int32_t qk_irb_stage_valid(const int8_t *w, const uint8_t *w4, const int32_t *b,
                                  const qanas_requant_t *rq, int32_t groups, int32_t in_c,
                                  int32_t out_c) {
  if ((w == 0) == (w4 == 0) || b == 0 || !qk_requant_given(rq) || groups <= 0 ||
      in_c % groups != 0 || out_c % groups != 0) {
    return 0;
  }
  return w4 == 0 || in_c / groups <= (groups == 1 ? QANAS_S4_MAX_DEPTH : QANAS_S4_PATCH_MAX);
}

/* The block has an expand conv (int8 or int4 weights). */
static int32_t qk_irb_has_expand(const qanas_irb_params_t *p) {
  return p->expand_weights != 0 || p->expand_weights_s4 != 0;
}

static int32_t qk_irb_params_valid(const qanas_irb_params_t *p) {
  if (p->in_h <= 0 || p->in_w <= 0 || p->in_c <= 0 || p->expanded_c <= 0 || p->out_h <= 0 ||
      p->out_w <= 0 || p->out_c <= 0 || p->kernel <= 0 || p->kernel > QK_IRB_MAX_KERNEL ||
      p->stride <= 0 || p->dilation <= 0 || p->pad_top < 0 || p->pad_left < 0) {
    return 0;
  }
  if (qk_irb_has_expand(p)
          ? !qk_irb_stage_valid(p->expand_weights, p->expand_weights_s4, p->expand_bias,
                                &p->expand_rq, p->expand_groups, p->in_c, p->expanded_c)
          : p->expanded_c != p->in_c) {
    return 0;
  }
  if (p->depthwise_weights == 0 || p->depthwise_bias == 0 ||
      !qk_requant_given(&p->depthwise_rq) ||
      !qk_irb_stage_valid(p->project_weights, p->project_weights_s4, p->project_bias,
                          &p->project_rq, p->project_groups, p->expanded_c, p->out_c)) {
    return 0;
  }
  if (p->residual && (p->stride != 1 || p->out_h != p->in_h || p->out_w != p->in_w ||
                      p->out_c != p->in_c || p->add.right_shift < 1 ||
                      p->add.right_shift > 62 ||
                      (p->residual_rescale && !qk_requant_given(&p->residual_rq)))) {
    return 0;
  }
  /* every size below fits int32 */
  const int64_t ring = (int64_t)((p->kernel - 1) * (int64_t)p->dilation + 1) *
                       ((int64_t)p->pad_left + p->in_w + (int64_t)p->out_w * p->stride +
                        (int64_t)p->kernel * p->dilation) * p->expanded_c;
  const int64_t tensors = (int64_t)p->in_h * p->in_w * p->in_c +
                          (int64_t)p->out_h * p->out_w * (p->out_c + p->expanded_c);
  return ring + tensors < INT32_MAX;
}

int32_t qanas_inverted_residual_scratch_bytes(const qanas_irb_params_t *p) {
  if (p == 0 || !qk_irb_params_valid(p)) {
    return -1;
  }
  const qk_irb_ring_t r = qk_irb_ring(p);
  const int32_t chunk = p->out_w < QK_IRB_CHUNK ? p->out_w : QK_IRB_CHUNK;
  return r.span * r.row_bytes + chunk * p->expanded_c + (p->residual ? chunk * p->out_c : 0);
}

/* out[0 .. n) = value. */
static void qk_irb_fill(int8_t *out, int8_t value, int32_t n) {
  for (int32_t i = 0; i < n; ++i) {
    out[i] = value;
  }
}

/* A 1x1 conv over `pixels` pixels with int8 weights `w` or packed int4 weights `w4`: the
 * pointwise kernel, or conv2d on a 1-row image when grouped. */
static void qk_irb_conv1x1(int32_t pixels, int32_t in_c, int32_t out_c, int32_t groups,
                           const int8_t *x, const int8_t *w, const uint8_t *w4,
                           const int32_t *b, const qanas_requant_t *rq, int8_t *y) {
  if (groups == 1) {
    (void)(w4 != 0 ? qanas_pointwise_conv_s4(pixels, in_c, out_c, x, w4, b, rq, y)
                   : qanas_pointwise_conv_s8(pixels, in_c, out_c, x, w, b, rq, y));
    return;
  }
  const qanas_conv_params_t c = {1, pixels, in_c, 1, pixels, out_c, 1, 1, 1, 1, 1, 1,
                                 0, 0, groups, 1, 0};
  (void)(w4 != 0 ? qanas_conv2d_s4(&c, x, w4, b, rq, y) : qanas_conv2d_s8(&c, x, w, b, rq, y));
}

/* Padded row u of E into its ring slot: expanded (or copied) from input row u - pad_top,
 * or the zero point when that row is padding. */
static void qk_irb_produce_row(const qanas_irb_params_t *p, const qk_irb_ring_t *r,
                               const int8_t *input, int32_t u, int8_t *ring) {
  int8_t *dst = ring + (u % r->span) * r->row_bytes + p->pad_left * p->expanded_c;
  const int32_t iy = u - p->pad_top, n = p->in_w * p->expanded_c;
  if (iy < 0 || iy >= p->in_h) {
    const int32_t zp = qk_irb_has_expand(p) ? p->expand_rq.output_zero_point
                                            : p->input_zero_point;
    qk_irb_fill(dst, (int8_t)zp, n);
    return;
  }
  const int8_t *x = input + iy * p->in_w * p->in_c;
  if (!qk_irb_has_expand(p)) {
    for (int32_t i = 0; i < n; ++i) {
      dst[i] = x[i];
    }
    return;
  }
  qk_irb_conv1x1(p->in_w, p->in_c, p->expanded_c, p->expand_groups, x, p->expand_weights,
                 p->expand_weights_s4, p->expand_bias, &p->expand_rq, dst);
}

/* Bytes of X rescaled per pass of the residual (a stack buffer). */
#define QK_IRB_RESCALE_RUN 128

/* y[0 .. n) = add(R, P) with R = x or x rescaled (residual_rq): the library's add. */
static void qk_irb_residual(const qanas_irb_params_t *p, const int8_t *x, const int8_t *proj,
                            int32_t n, int8_t *y) {
  if (!p->residual_rescale) {
    (void)qanas_add_s8(n, x, proj, 0, &p->add, y);
    return;
  }
  const qanas_requant_t *rq = &p->residual_rq;
  int8_t rescaled[QK_IRB_RESCALE_RUN];
  for (int32_t i = 0; i < n; i += QK_IRB_RESCALE_RUN) {
    const int32_t run = n - i < QK_IRB_RESCALE_RUN ? n - i : QK_IRB_RESCALE_RUN;
    for (int32_t j = 0; j < run; ++j) {
      rescaled[j] = (int8_t)qk_requantize(x[i + j] - p->input_zero_point, rq->multiplier[0],
                                          rq->shift[0], rq->output_zero_point, rq->qmin,
                                          rq->qmax);
    }
    (void)qanas_add_s8(run, rescaled, proj + i, 0, &p->add, y + i);
  }
}

qanas_status_t qanas_inverted_residual_s8(const qanas_irb_params_t *p, const int8_t *input,
                                          int8_t *scratch, int8_t *output) {
  if (p == 0 || input == 0 || scratch == 0 || output == 0 || !qk_irb_params_valid(p)) {
    return QANAS_ERROR_BAD_ARGUMENT;
  }
  const qk_irb_ring_t r = qk_irb_ring(p);
  const int32_t ce = p->expanded_c;
  int8_t *const ring = scratch;
  int8_t *const dw_out = ring + r.span * r.row_bytes;
  const int32_t chunk = p->out_w < QK_IRB_CHUNK ? p->out_w : QK_IRB_CHUNK;
  int8_t *const proj_out = dw_out + chunk * ce; /* residual blocks only */
  const int8_t zp_e = (int8_t)(qk_irb_has_expand(p) ? p->expand_rq.output_zero_point
                                                    : p->input_zero_point);
  /* The padding columns of every slot: written once, never overwritten. */
  for (int32_t s = 0; s < r.span; ++s) {
    int8_t *row = ring + s * r.row_bytes;
    qk_irb_fill(row, zp_e, p->pad_left * ce);
    qk_irb_fill(row + (p->pad_left + p->in_w) * ce, zp_e, r.pad_right * ce);
  }
  const int32_t vector_requant = qk_all_narrow_shifts(p->depthwise_rq.shift, ce);
  const int8_t *rows[QK_IRB_MAX_KERNEL];
  int32_t next = 0; /* the next padded row to produce */
  for (int32_t oy = 0; oy < p->out_h; ++oy) {
    const int32_t top = oy * p->stride; /* padded row of the window's first tap */
    next = next > top ? next : top;     /* rows no window reads are never produced */
    for (; next < top + r.span; ++next) {
      qk_irb_produce_row(p, &r, input, next, ring);
    }
    for (int32_t ky = 0; ky < p->kernel; ++ky) {
      rows[ky] = ring + ((top + ky * p->dilation) % r.span) * r.row_bytes;
    }
    for (int32_t ox = 0; ox < p->out_w; ox += chunk) {
      const int32_t n = p->out_w - ox < chunk ? p->out_w - ox : chunk;
      const int8_t *chunk_rows[QK_IRB_MAX_KERNEL];
      for (int32_t ky = 0; ky < p->kernel; ++ky) {
        chunk_rows[ky] = rows[ky] + ox * p->stride * ce;
      }
      qk_depthwise_row(chunk_rows, p->kernel, p->kernel, n, p->stride * ce, p->dilation * ce,
                       ce, p->depthwise_weights, p->depthwise_bias, &p->depthwise_rq,
                       vector_requant, dw_out);
      const int32_t first = (oy * p->out_w + ox) * p->out_c;
      qk_irb_conv1x1(n, ce, p->out_c, p->project_groups, dw_out, p->project_weights,
                     p->project_weights_s4, p->project_bias, &p->project_rq,
                     p->residual ? proj_out : output + first);
      if (p->residual) { /* same shape: X's pixel has Y's index */
        qk_irb_residual(p, input + first, proj_out, n * p->out_c, output + first);
      }
    }
  }
  return QANAS_OK;
}
