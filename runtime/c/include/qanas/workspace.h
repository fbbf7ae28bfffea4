/* Kernel scratch without a heap.
 *
 * TVM kernels ask for temporaries with TVMBackendAllocWorkspace and give them back with
 * TVMBackendFreeWorkspace, in last-in first-out order. The compiler sizes every kernel's
 * scratch at compile time and places it in the arena; before calling a kernel, the
 * emitted model code points the allocator at that kernel's region with
 * qanas_workspace_set. Allocations are served by bumping a pointer inside the region
 * (each rounded up to QANAS_WORKSPACE_ALIGNMENT); a request that does not fit returns
 * NULL, which makes the kernel fail, and the model reports QANAS_ERROR_KERNEL_FAILED.
 * qanas_workspace_status then says QANAS_ERROR_WORKSPACE_EXHAUSTED.
 *
 * One region is current at a time: kernels run one after another on one core.
 */
#ifndef QANAS_WORKSPACE_H_
#define QANAS_WORKSPACE_H_

#include <stddef.h>
#include <stdint.h>

#include "qanas/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Bytes each allocation is rounded up to; matches the compiler's planning. */
#define QANAS_WORKSPACE_ALIGNMENT 16u

/* Makes [region, region + bytes) the scratch of the next kernel call.
 * A NULL region with 0 bytes means "this kernel needs no scratch". */
void qanas_workspace_set(uint8_t *region, size_t bytes);

/* QANAS_OK, or QANAS_ERROR_WORKSPACE_EXHAUSTED when a request since the last
 * qanas_workspace_set did not fit. */
qanas_status_t qanas_workspace_status(void);

/* High-water mark in bytes of the current region since the last qanas_workspace_set. */
size_t qanas_workspace_peak(void);

/* The TVM backend API the kernels call (signatures from tvm/runtime/c_backend_api.h). */
void *TVMBackendAllocWorkspace(int device_type, int device_id, uint64_t nbytes,
                               int dtype_code_hint, int dtype_bits_hint);
int TVMBackendFreeWorkspace(int device_type, int device_id, void *ptr);

#ifdef __cplusplus
}
#endif

#endif /* QANAS_WORKSPACE_H_ */
