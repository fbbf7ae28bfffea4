/* Out-of-line requantization helpers (the inline fast path is in qk_internal.h). */
#include "qk_internal.h"

int32_t qk_requantize_wide(int32_t acc, int32_t multiplier, int32_t shift) {
  const int64_t product = (int64_t)acc * multiplier;
  const int32_t n = 31 - shift; /* 1 .. 32 */
  const int64_t odd = (product >> n) & 1;
  return (int32_t)((product + (((int64_t)1 << (n - 1)) - 1) + odd) >> n);
}

int32_t qk_all_narrow_shifts(const int32_t *shift, int32_t count) {
  for (int32_t i = 0; i < count; ++i) {
    if (shift[i] > -2) {
      return 0;
    }
  }
  return 1;
}
