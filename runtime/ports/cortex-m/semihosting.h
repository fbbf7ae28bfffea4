/* Arm semihosting (BKPT 0xAB on M-profile): console and exit through the debugger or QEMU
 * (-semihosting). Operation numbers from the Arm semihosting specification v2. */
#ifndef QANAS_SEMIHOSTING_H_
#define QANAS_SEMIHOSTING_H_

#include <stddef.h>

/* Writes `length` bytes to the host's stdout. */
void qanas_semihosting_write(const char *text, size_t length);

/* Copies the command line (QEMU: -append) into `buffer`; returns 0 on success. */
int qanas_semihosting_command_line(char *buffer, size_t bytes);

/* Stops the program: status 0 reports ApplicationExit (QEMU exits 0), others an error. */
void qanas_semihosting_exit(int status) __attribute__((noreturn));

#endif /* QANAS_SEMIHOSTING_H_ */
