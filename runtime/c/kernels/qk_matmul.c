/* Batched int8 matmul of two activations (attention's Q·Kᵀ and softmax·V): each output is
 * requant(sum_k (a[m][k] - za) (b[k][n] - zb)), one requantization of the int32 product,
 * as compiler/reference/attention.py computes it.
 *
 * It runs as a pointwise convolution whose pixels are A's rows and whose weight rows are
 * Bᵀ's (k contiguous in both), on the convolutions' own micro-kernel (qk_dot_block of
 * qk_block.h: DSP SMLAD, Helium VMLADAV, NEON, AVX2 or portable blocks) and block store
 * (qk_store_block). The operands stay raw int8; the zero points become the block's
 * starting sums, expanded as
 *   sum (a - za)(b - zb) = sum a b - zb rowsum_a[m] - za colsum_b[n] + K za zb,
 * the column part once per column, the row part once per row and column pass (every
 * partial sum is below 2^31 in magnitude for K <= QANAS_MATMUL_MAX_K). B given as
 * [K][N] is transposed, QK_MM_PANEL bytes of columns at a time, into a stack panel. */
#include "qk_block.h"

/* Bytes of the stack panel of Bᵀ rows (B given [K][N]); columns per pass at most
 * QK_MM_COLS (their starting sums live on the stack too). */
#define QK_MM_PANEL 1024
#define QK_MM_COLS 64

/* sum_i x[i] over n int8 values. */
QK_INLINE int32_t qk_row_sum(const int8_t *x, int32_t n) {
  int32_t s = 0;
  for (int32_t i = 0; i < n; ++i) {
    s += x[i];
  }
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

qanas_status_t qanas_matmul_s8(const qanas_matmul_params_t *params, const int8_t *a,
                               const int8_t *b, const qanas_requant_t *rq, int8_t *output) {
  const qanas_matmul_params_t *p = params;
  if (p == 0 || a == 0 || b == 0 || rq == 0 || output == 0 || p->batch <= 0 || p->m <= 0 ||
      p->k <= 0 || p->n <= 0 || p->k > QANAS_MATMUL_MAX_K ||
      (!p->transpose_b && p->k > QK_MM_PANEL)) {
    return QANAS_ERROR_BAD_ARGUMENT;
  }
  const int32_t k = p->k, n = p->n, za = p->a_zero_point, zb = p->b_zero_point;
  const int32_t step = p->transpose_b ? QK_MM_COLS
                                      : (QK_MM_PANEL / k < QK_MM_COLS ? QK_MM_PANEL / k
                                                                       : QK_MM_COLS);
  const int32_t vector_rq = qk_all_narrow_shifts(rq->shift, n);
  int8_t panel[QK_MM_PANEL];
  int32_t col_acc[QK_MM_COLS];
  for (int32_t batch = 0; batch < p->batch; ++batch) {
    const int8_t *ab = a + batch * p->m * k;
    const int8_t *bb = b + batch * k * n;
    int8_t *out = output + batch * p->m * n;
    for (int32_t n0 = 0; n0 < n; n0 += step) {
      const int32_t cols = n - n0 < step ? n - n0 : step;
      const int8_t *w = bb + n0 * k; /* Bᵀ rows, in place */
      if (!p->transpose_b) {
        for (int32_t i = 0; i < k; ++i) {
          for (int32_t j = 0; j < cols; ++j) {
            panel[j * k + i] = bb[i * n + n0 + j];
          }
        }
        w = panel;
      }
      for (int32_t j = 0; j < cols; ++j) {
        col_acc[j] = za != 0 ? za * (k * zb - qk_row_sum(w + j * k, k)) : 0;
      }
      qk_matmul_columns(p, ab, w, col_acc, n0, cols, rq, vector_rq, out);
    }
  }
  return QANAS_OK;
}
