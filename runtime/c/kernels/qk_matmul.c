/* Batched int8 matmul of two activations (attention's Q·Kᵀ and softmax·V): each output is
 * requant(sum_k (a[m][k] - za) (b[k][n] - zb)), one requantization of the int32 product,
 * as compiler/reference/attention.py computes it.
 *
 * It runs as a pointwise convolution whose pixels are A's rows and whose weight rows are
 * Bᵀ's (k contiguous in both), on the convolutions' own micro-kernels (qk_block.h). The
 * operands stay raw int8; the zero points become the starting sums, expanded as
 *   sum (a - za)(b - zb) = sum a b - zb rowsum_a[m] - za colsum_b[n] + K za zb,
 * the column part once per column, the row part once per row and column pass (every
 * partial sum is below 2^31 in magnitude for K <= QANAS_MATMUL_MAX_K).
 * Paths (docs/kernels.md, "Matmul"):
 * - Helium, B as [K][N]: four columns per vector, a widening VLDRB.S32 of B's row and a
 *   VMLA by the scalar a[m][k] per k (qk_matmul_mve_rows): no panel and no per-column
 *   setup, which attention's sizes (K or N of 2 to 32) need;
 * - Helium, B as [N][K] (transpose_b) with K <= 128: a pass of columns gathered into a
 *   stack panel in the interleaved blocks of the convolutions' GEMM, each row of A one
 *   qk_mve_gemm_pixel (eight VMLADAV accumulators, vector requantization);
 * - the rest (DSP SMLAD, NEON, AVX2, portable; Helium above K = 128): 2 rows x
 *   QK_BLOCK_CH columns of qk_dot_block and qk_store_block, Bᵀ rows read in place
 *   (transpose_b) or from a panel of QK_MM_PANEL bytes (B given [K][N]). */
#include <stddef.h>

#include "qk_block.h"

/* Bytes of the stack panel of Bᵀ rows (B given [K][N]); columns per pass at most
 * QK_MM_COLS (their starting sums live on the stack too). */
#define QK_MM_PANEL 1024
#define QK_MM_COLS 64

/* sum_i x[i] over n int8 values. */
QK_INLINE int32_t qk_row_sum(const int8_t *x, int32_t n) {
  int32_t s = 0;
#if defined(QK_ISA_MVE)
  for (int32_t i = 0; i < n; i += 16) {
    s = vaddvaq_s8(s, vldrbq_z_s8(x + i, vctp8q((uint32_t)(n - i))));
  }
#else
  for (int32_t i = 0; i < n; ++i) {
    s += x[i];
  }
#endif
  return s;
}

/* Columns n0 .. n0 + cols of one batch: w holds their Bᵀ rows (k bytes each), col_acc
 * their starting sums (the column part); each block of rows adds its row part. */
static void qk_matmul_columns(const qanas_matmul_params_t *p, const int8_t *a,
                              const int8_t *w, const int32_t *col_acc, int32_t n0,
                              int32_t cols, const qanas_requant_t *rq, int32_t vector_rq,
                              int8_t *out) {
  const int32_t k = p->k, n = p->n, zb = p->b_zero_point;
  for (int32_t m = 0; m < p->m; m += QK_BLOCK_PX) {
    const int32_t two_rows = QK_BLOCK_PX == 2 && m + 1 < p->m;
    const int8_t *x0 = a + m * k;
    const int8_t *x1 = two_rows ? x0 + k : x0;
    int8_t *out0 = out + m * n;
    int8_t *out1 = two_rows ? out0 + n : 0;
    int32_t row[QK_BLOCK_PX];
    for (int32_t r = 0; r < QK_BLOCK_PX; ++r) {
      row[r] = zb != 0 ? -zb * qk_row_sum(r == 0 ? x0 : x1, k) : 0;
    }
    for (int32_t j = 0; j < cols; j += QK_BLOCK_CH) {
      const int32_t rows = cols - j < QK_BLOCK_CH ? cols - j : QK_BLOCK_CH;
      int32_t acc[QK_BLOCK_PX * QK_BLOCK_CH];
      for (int32_t c = 0; c < QK_BLOCK_CH; ++c) {
        const int32_t col = col_acc[j + (c < rows ? c : rows - 1)];
        for (int32_t r = 0; r < QK_BLOCK_PX; ++r) {
          acc[r * QK_BLOCK_CH + c] = col + row[r];
        }
      }
      qk_dot_block(x0, x1, w + j * k, k, rows, k, acc);
      qk_store_block(acc, rq, n0 + j, rows, vector_rq, out0, out1);
    }
  }
}

#if defined(QK_ISA_MVE)
/* Columns per Helium pass for reduction length k: whole 8-row blocks of the panel, at
 * most QK_MM_COLS; 0 when one block does not fit (k over 128: qk_matmul_blocks). */
QK_INLINE int32_t qk_mve_pass_cols(int32_t k) {
  const int32_t kp = (k + QK_MVE_CHUNK - 1) & ~(QK_MVE_CHUNK - 1);
  const int32_t cols = QK_MM_PANEL / kp / QK_MVE_ROWS * QK_MVE_ROWS;
  return cols < QK_MM_COLS ? cols : QK_MM_COLS;
}

/* Bᵀ rows n0 .. n0 + cols of one batch (b: its B) into the panel in the interleaved blocks
 * of qk_mve_gemm_pixel (rows padded to `rows`, a multiple of 8, and k to kp, a multiple
 * of 16, with zeros), and their column parts into col_acc. Block r (rows 8r .. 8r + 7),
 * row t, chunk c is at panel + 8 r kp + 128 c + 16 t: a zero-predicated load of the row
 * in place (transpose_b), or the column's bytes gathered (a VLDRB gather while the
 * offsets fit a byte). Its own function: inlined beside the GEMM, its loop spilled. */
static QK_NOINLINE void qk_mve_fill_panel(const qanas_matmul_params_t *p, const int8_t *b,
                                          int32_t n0, int32_t cols, int32_t rows, int32_t kp,
                                          int8_t *panel, int32_t *col_acc) {
  const int32_t k = p->k, n = p->n, transpose_b = p->transpose_b;
  const int32_t za = p->a_zero_point, zb = p->b_zero_point;
  const uint8x16_t gather = vmulq_n_u8(vidupq_n_u8(0, 1), (uint8_t)n);
  const int32_t gather_ok = (QK_MVE_CHUNK - 1) * n < 256;
  for (int32_t j = 0; j < rows; ++j) {
    int8_t *dst = panel + (j & ~(QK_MVE_ROWS - 1)) * kp + (j & (QK_MVE_ROWS - 1)) * QK_MVE_CHUNK;
    const int8_t *src = transpose_b ? b + (n0 + j) * k : b + n0 + j;
    int32_t sum = 0;
    for (int32_t c = 0; c < kp; c += QK_MVE_CHUNK, dst += QK_MVE_ROWS * QK_MVE_CHUNK) {
      const mve_pred16_t live = j < cols ? vctp8q((uint32_t)(k - c)) : 0;
      int8x16_t v;
      if (transpose_b) {
        v = vldrbq_z_s8(src + c, live);
      } else if (gather_ok) {
        v = vldrbq_gather_offset_z_s8(src + c * n, gather, live);
      } else {
        for (int32_t t = 0; t < QK_MVE_CHUNK; ++t) {
          dst[t] = j < cols && c + t < k ? src[(c + t) * n] : 0;
        }
        v = vldrbq_s8(dst);
      }
      vstrbq_s8(dst, v);
      sum = vaddvaq_s8(sum, v);
    }
    col_acc[j] = za * (k * zb - sum);
  }
}

/* Columns n0 .. n0 + cols of one batch (b: its B) on Helium: the panel, then one
 * qk_mve_gemm_pixel per row of A with the row's starting sums as its bias. */
static QK_NOINLINE void qk_matmul_mve_pass(const qanas_matmul_params_t *p, const int8_t *a,
                                           const int8_t *b, int32_t n0, int32_t cols,
                                           const qanas_requant_t *rq, int32_t vector_rq,
                                           int8_t *out) {
  const int32_t k = p->k, n = p->n, zb = p->b_zero_point;
  const int32_t kp = (k + QK_MVE_CHUNK - 1) & ~(QK_MVE_CHUNK - 1);
  int8_t panel[QK_MM_PANEL] __attribute__((aligned(16)));
  int32_t col_acc[QK_MM_COLS] __attribute__((aligned(16)));
  int32_t bias[QK_MM_COLS] __attribute__((aligned(16)));
  qk_mve_fill_panel(p, b, n0, cols, (cols + QK_MVE_ROWS - 1) & ~(QK_MVE_ROWS - 1), kp, panel,
                    col_acc);
  const qanas_requant_t pass_rq = {rq->multiplier + n0, rq->shift + n0, rq->output_zero_point,
                                   rq->qmin, rq->qmax};
  for (int32_t m = 0; m < p->m; ++m) {
    const int32_t row = zb != 0 ? -zb * qk_row_sum(a + m * k, k) : 0;
    for (int32_t j = 0; j < cols; j += 4) {
      vstrwq_s32(bias + j, vaddq_n_s32(vldrwq_s32(col_acc + j), row));
    }
    qk_mve_gemm_pixel(a + m * k, panel, k, cols, bias, &pass_rq, 0, vector_rq,
                      out + m * n + n0);
  }
}

/* Helium, B as [K][N]: four columns per vector, out[m][j..j+3] = requant(col[j..j+3] +
 * row[m] + sum_k a[m][k] B[k][j..j+3]), each k one widening VLDRB.S32 of B's row and a
 * VMLA by the scalar a[m][k]: no panel, and a product of attention's sizes (K or N of a
 * few elements) pays no per-column setup. Columns in passes of QK_MM_COLS, whose column
 * parts are made first. */
static QK_NOINLINE void qk_matmul_mve_rows(const qanas_matmul_params_t *p, const int8_t *a,
                                           const int8_t *b, const qanas_requant_t *rq,
                                           int32_t vector_rq, int8_t *out) {
  const int32_t k = p->k, n = p->n, za = p->a_zero_point, zb = p->b_zero_point;
  const int32_t zp = rq->output_zero_point, lo = rq->qmin, hi = rq->qmax;
  int32_t col_acc[QK_MM_COLS] __attribute__((aligned(16)));
  for (int32_t n0 = 0; n0 < n; n0 += QK_MM_COLS) {
    const int32_t cols = n - n0 < QK_MM_COLS ? n - n0 : QK_MM_COLS;
    for (int32_t j = 0; j < cols; j += 4) {
      const mve_pred16_t live = vctp32q((uint32_t)(cols - j));
      int32x4_t sum = vdupq_n_s32(0);
      for (int32_t i = 0; za != 0 && i < k; ++i) { /* no column part without za */
        sum = vaddq_s32(sum, vldrbq_z_s32(b + i * n + n0 + j, live));
      }
      vstrwq_s32(col_acc + j, vmulq_n_s32(vsubq_s32(vdupq_n_s32(k * zb), sum), za));
    }
    for (int32_t m = 0; m < p->m; ++m) {
      const int8_t *x = a + m * k;
      const int32_t row = zb != 0 ? -zb * qk_row_sum(x, k) : 0;
      int8_t *dst = out + m * n + n0;
      for (int32_t j = 0; j < cols; j += 4) {
        const mve_pred16_t live = vctp32q((uint32_t)(cols - j));
        const int8_t *bj = b + n0 + j;
        int32x4_t acc = vaddq_n_s32(vldrwq_s32(col_acc + j), row);
        for (int32_t i = 0; i < k; ++i, bj += n) {
          acc = vmlaq_n_s32(acc, vldrbq_z_s32(bj, live), x[i]);
        }
        const int32_t o = n0 + j;
        if (vector_rq) {
          vstrbq_p_s32(dst + j, qk_mve_requantize(acc, vldrwq_z_s32(rq->multiplier + o, live),
                                                  vldrwq_z_s32(rq->shift + o, live), zp,
                                                  lo, hi),
                       live);
          continue;
        }
        int32_t sums[4] __attribute__((aligned(16)));
        vstrwq_s32(sums, acc);
        for (int32_t t = 0; t < 4 && j + t < cols; ++t) {
          dst[j + t] = (int8_t)qk_requantize(sums[t], rq->multiplier[o + t], rq->shift[o + t],
                                             zp, lo, hi);
        }
      }
    }
  }
}
#endif

/* One batch on the blocks of qk_dot_block (every path but Helium's, and Helium for K over
 * 128): Bᵀ rows in place (transpose_b) or transposed into the panel, QK_MM_PANEL bytes of
 * columns per pass. */
static QK_NOINLINE void qk_matmul_blocks(const qanas_matmul_params_t *p, const int8_t *a,
                                         const int8_t *b, const qanas_requant_t *rq,
                                         int32_t vector_rq, int8_t *out) {
  const int32_t k = p->k, n = p->n, za = p->a_zero_point, zb = p->b_zero_point;
  const int32_t step = p->transpose_b ? QK_MM_COLS
                                      : (QK_MM_PANEL / k < QK_MM_COLS ? QK_MM_PANEL / k
                                                                       : QK_MM_COLS);
  int8_t panel[QK_MM_PANEL];
  int32_t col_acc[QK_MM_COLS];
  for (int32_t n0 = 0; n0 < n; n0 += step) {
    const int32_t cols = n - n0 < step ? n - n0 : step;
    const int8_t *w = b + n0 * k; /* Bᵀ rows, in place */
    if (!p->transpose_b) {
      for (int32_t i = 0; i < k; ++i) {
        for (int32_t j = 0; j < cols; ++j) {
          panel[j * k + i] = b[i * n + n0 + j];
        }
      }
      w = panel;
    }
    for (int32_t j = 0; j < cols; ++j) {
      col_acc[j] = za != 0 ? za * (k * zb - qk_row_sum(w + j * k, k)) : 0;
    }
    qk_matmul_columns(p, a, w, col_acc, n0, cols, rq, vector_rq, out);
  }
}

qanas_status_t qanas_matmul_s8(const qanas_matmul_params_t *params, const int8_t *a,
                               const int8_t *b, const qanas_requant_t *rq, int8_t *output) {
  const qanas_matmul_params_t *p = params;
  if (p == 0 || a == 0 || b == 0 || rq == 0 || output == 0 || p->batch <= 0 || p->m <= 0 ||
      p->k <= 0 || p->n <= 0 || p->k > QANAS_MATMUL_MAX_K ||
      (!p->transpose_b && p->k > QK_MM_PANEL)) {
    return QANAS_ERROR_BAD_ARGUMENT;
  }
  const int32_t m = p->m, k = p->k, n = p->n;
  const int32_t vector_rq = qk_all_narrow_shifts(rq->shift, n);
#if defined(QK_ISA_MVE)
  const int32_t mve_cols = p->transpose_b ? qk_mve_pass_cols(k) : 0;
#endif
  for (int32_t batch = 0; batch < p->batch; ++batch) {
    const int8_t *ab = a + batch * m * k, *bb = b + batch * k * n;
    int8_t *out = output + batch * m * n;
#if defined(QK_ISA_MVE)
    if (!p->transpose_b) {
      qk_matmul_mve_rows(p, ab, bb, rq, vector_rq, out);
      continue;
    }
    for (int32_t n0 = 0; mve_cols > 0 && n0 < n; n0 += mve_cols) {
      qk_matmul_mve_pass(p, ab, bb, n0, n - n0 < mve_cols ? n - n0 : mve_cols, rq, vector_rq,
                         out);
    }
    if (mve_cols > 0) {
      continue;
    }
#endif
    qk_matmul_blocks(p, ab, bb, rq, vector_rq, out);
  }
  return QANAS_OK;
}
