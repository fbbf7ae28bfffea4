/* A minimal bare-metal start for the toolchain probe on Cortex-M under QEMU.
 *
 * The vector table holds the initial stack pointer and the reset handler; the reset
 * handler enables the FPU (and MVE), copies .data, zeroes .bss, runs main and reports
 * through Arm semihosting (SYS_WRITE0 to print, SYS_EXIT to stop QEMU). */
#include <stdint.h>

#include "probe_io.h"

#define SYS_WRITE0 0x04
#define SYS_EXIT 0x18
#define ADP_STOPPED_APPLICATION_EXIT 0x20026
#define ADP_STOPPED_RUNTIME_ERROR 0x20023

extern uint32_t __data_load, __data_start, __data_end, __bss_start, __bss_end, __stack_end;
int main(void);

static int semihost(int op, const void *arg) {
    register int r0 __asm__("r0") = op;
    register const void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void probe_print(const char *text) {
    semihost(SYS_WRITE0, text);
}

__attribute__((noreturn, optimize("O0"))) void probe_reset(void) {
    volatile uint32_t *cpacr = (volatile uint32_t *)0xE000ED88u;
    uint32_t *src = &__data_load;
    uint32_t *dst;

    *cpacr |= 0xFu << 20;  /* full access to CP10/CP11: FPU and MVE */
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    for (dst = &__data_start; dst < &__data_end;) {
        *dst++ = *src++;
    }
    for (dst = &__bss_start; dst < &__bss_end;) {
        *dst++ = 0;
    }
    semihost(SYS_EXIT, (const void *)(uintptr_t)(main() == 0 ? ADP_STOPPED_APPLICATION_EXIT
                                                              : ADP_STOPPED_RUNTIME_ERROR));
    for (;;) {
    }
}

__attribute__((section(".vectors"), used)) static const void *const vectors[2] = {
    &__stack_end,
    (const void *)probe_reset,
};
