/* The toolchain probe: C library headers, libm and libc link and run on every target.
 *
 * scripts/install_toolchains.sh builds this file with each compiler it installs (the host
 * gcc, arm-none-eabi-gcc for Cortex-M4 and Cortex-M55, aarch64-linux-gnu-gcc) and runs the
 * result in the matching emulator. A missing header, library or emulator then fails the
 * install, naming the package, instead of a test several minutes later. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "probe_io.h"

int main(void) {
    static const char greeting[] = "qanas toolchain probe";
    char copy[sizeof greeting];
    volatile float x = 2.0f;  /* volatile: libm is called at run time, not folded */
    int32_t root_milli;

    memcpy(copy, greeting, sizeof greeting);
    root_milli = (int32_t)lrintf(sqrtf(x) * 1000.0f);
    if (strcmp(copy, greeting) != 0 || root_milli != 1414) {
        probe_print("probe: FAILED\n");
        return 1;
    }
    probe_print("probe: ok\n");
    return 0;
}
