/* Console output of the toolchain probe: stdio on a hosted target, semihosting on Cortex-M. */
#ifndef QANAS_PROBE_IO_H
#define QANAS_PROBE_IO_H

void probe_print(const char *text);

#endif
