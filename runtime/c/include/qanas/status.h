/* Status codes returned by the qanas C runtime and by emitted models.
 *
 * Every function that can fail returns a qanas_status_t; QANAS_OK is zero so that
 * `if (status != QANAS_OK)` reads naturally. Codes are stable: append, never renumber.
 */
#ifndef QANAS_STATUS_H_
#define QANAS_STATUS_H_

#ifdef __cplusplus
extern "C" {
#endif

typedef enum {
  QANAS_OK = 0,
  /* The arena passed to init is smaller than the model's planned arena. */
  QANAS_ERROR_ARENA_TOO_SMALL = 1,
  /* A TVM kernel returned non-zero (e.g. it asked for more scratch than planned). */
  QANAS_ERROR_KERNEL_FAILED = 2,
  /* NULL pointer, misaligned arena, or an index out of range. */
  QANAS_ERROR_BAD_ARGUMENT = 3,
  /* run was called before a successful init. */
  QANAS_ERROR_NOT_INITIALIZED = 4,
  /* A kernel asked TVMBackendAllocWorkspace for more scratch than the plan reserved. */
  QANAS_ERROR_WORKSPACE_EXHAUSTED = 5
} qanas_status_t;

/* A short constant name for a status code ("QANAS_OK", ...), for logs. */
const char *qanas_status_name(qanas_status_t status);

#ifdef __cplusplus
}
#endif

#endif /* QANAS_STATUS_H_ */
