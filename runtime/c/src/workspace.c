/* Bump allocator over the planned scratch region of the current kernel; see workspace.h. */
#include "qanas/workspace.h"

static uint8_t *g_region = NULL;
static size_t g_region_bytes = 0;
static size_t g_used = 0;
static size_t g_peak = 0;
static qanas_status_t g_status = QANAS_OK;

static size_t AlignUp(size_t value) {
  return (value + (QANAS_WORKSPACE_ALIGNMENT - 1u)) & ~(size_t)(QANAS_WORKSPACE_ALIGNMENT - 1u);
}

void qanas_workspace_set(uint8_t *region, size_t bytes) {
  g_region = region;
  g_region_bytes = (region == NULL) ? 0u : bytes;
  g_used = 0;
  g_peak = 0;
  g_status = QANAS_OK;
}

qanas_status_t qanas_workspace_status(void) { return g_status; }

size_t qanas_workspace_peak(void) { return g_peak; }

void *TVMBackendAllocWorkspace(int device_type, int device_id, uint64_t nbytes,
                               int dtype_code_hint, int dtype_bits_hint) {
  (void)device_type;
  (void)device_id;
  (void)dtype_code_hint;
  (void)dtype_bits_hint;
  const size_t available = g_region_bytes - g_used;
  if (nbytes > (uint64_t)available || AlignUp((size_t)nbytes) > available) {
    g_status = QANAS_ERROR_WORKSPACE_EXHAUSTED;
    return NULL;
  }
  uint8_t *block = g_region + g_used;
  g_used += AlignUp((size_t)nbytes);
  if (g_used > g_peak) {
    g_peak = g_used;
  }
  return block;
}

int TVMBackendFreeWorkspace(int device_type, int device_id, void *ptr) {
  (void)device_type;
  (void)device_id;
  uint8_t *block = (uint8_t *)ptr;
  if (block == NULL || g_region == NULL || block < g_region || block >= g_region + g_used) {
    /* Not from the current region, or already released with a block allocated before it. */
    return (block == NULL) ? -1 : 0;
  }
  /* Frees are last-in first-out (TVM scopes nest): everything from ptr on is released. */
  g_used = (size_t)(block - g_region);
  return 0;
}
