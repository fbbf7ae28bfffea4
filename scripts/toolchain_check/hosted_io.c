/* probe_print for hosted targets (the host, AArch64 Linux under qemu-aarch64). */
#include <stdio.h>

#include "probe_io.h"

void probe_print(const char *text) {
    fputs(text, stdout);
}
