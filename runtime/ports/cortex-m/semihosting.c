/* Arm semihosting calls; see semihosting.h. */
#include "semihosting.h"

#include <stdint.h>

enum {
  kSysOpen = 0x01,
  kSysWrite = 0x05,
  kSysGetCmdline = 0x15,
  kSysExit = 0x18,
  kAdpStoppedApplicationExit = 0x20026,
  kAdpStoppedRunTimeErrorUnknown = 0x20023,
  kOpenModeWrite = 4, /* "w" */
};

static int32_t g_stdout_handle = -1;

static int32_t SemihostingCall(int32_t operation, void *argument) {
  register int32_t r0 __asm__("r0") = operation;
  register void *r1 __asm__("r1") = argument;
  __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
  return r0;
}

void qanas_semihosting_write(const char *text, size_t length) {
  if (g_stdout_handle < 0) {
    /* The special file ":tt" is the debugger's (QEMU's) console. */
    static const char kConsole[] = ":tt";
    uint32_t open_block[3] = {(uint32_t)(uintptr_t)kConsole, (uint32_t)kOpenModeWrite,
                              (uint32_t)(sizeof(kConsole) - 1u)};
    g_stdout_handle = SemihostingCall(kSysOpen, open_block);
    if (g_stdout_handle < 0) {
      return;
    }
  }
  uint32_t block[3] = {(uint32_t)g_stdout_handle, (uint32_t)(uintptr_t)text,
                       (uint32_t)length};
  (void)SemihostingCall(kSysWrite, block);
}

int qanas_semihosting_command_line(char *buffer, size_t bytes) {
  uint32_t block[2] = {(uint32_t)(uintptr_t)buffer, (uint32_t)bytes};
  if (bytes == 0) {
    return -1;
  }
  buffer[0] = '\0';
  return SemihostingCall(kSysGetCmdline, block) == 0 ? 0 : -1;
}

void qanas_semihosting_exit(int status) {
  const int32_t reason =
      (status == 0) ? kAdpStoppedApplicationExit : kAdpStoppedRunTimeErrorUnknown;
  (void)SemihostingCall(kSysExit, (void *)(uintptr_t)reason);
  for (;;) {
  }
}
