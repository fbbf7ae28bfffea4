/* Names of status codes, for logs and the host harness. */
#include "qanas/status.h"

const char *qanas_status_name(qanas_status_t status) {
  switch (status) {
    case QANAS_OK:
      return "QANAS_OK";
    case QANAS_ERROR_ARENA_TOO_SMALL:
      return "QANAS_ERROR_ARENA_TOO_SMALL";
    case QANAS_ERROR_KERNEL_FAILED:
      return "QANAS_ERROR_KERNEL_FAILED";
    case QANAS_ERROR_BAD_ARGUMENT:
      return "QANAS_ERROR_BAD_ARGUMENT";
    case QANAS_ERROR_NOT_INITIALIZED:
      return "QANAS_ERROR_NOT_INITIALIZED";
    case QANAS_ERROR_WORKSPACE_EXHAUSTED:
      return "QANAS_ERROR_WORKSPACE_EXHAUSTED";
  }
  return "QANAS_ERROR_UNKNOWN";
}
