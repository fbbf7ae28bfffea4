/* The vector table (section .vectors, placed first by the linker script) and the
 * handlers of faults, which report and stop instead of spinning silently. */
#include <stddef.h>
#include <stdint.h>

#include "port.h"

extern uint32_t __stack_end;
void Reset_Handler(void);
void SysTick_Handler(void);

static void WriteText(const char *text) {
  size_t length = 0;
  while (text[length] != '\0') {
    ++length;
  }
  qanas_port_write(text, length);
}

/* HardFault, MemManage, BusFault, UsageFault, and any interrupt nobody expects. */
void qanas_fault_handler(void) {
  WriteText("\n@QANAS ERROR status=QANAS_ERROR_FAULT where=exception\n");
  qanas_port_exit(3);
}

typedef void (*VectorHandler)(void);

/* 16 system exceptions; external interrupts are not used by the harness. */
__attribute__((section(".vectors"), used)) const VectorHandler qanas_vector_table[16] = {
    (VectorHandler)(uintptr_t)&__stack_end, /* initial main stack pointer */
    Reset_Handler,
    qanas_fault_handler, /* NMI */
    qanas_fault_handler, /* HardFault */
    qanas_fault_handler, /* MemManage */
    qanas_fault_handler, /* BusFault */
    qanas_fault_handler, /* UsageFault */
    qanas_fault_handler, /* SecureFault (Armv8-M) */
    NULL,
    NULL,
    NULL,
    qanas_fault_handler, /* SVCall */
    qanas_fault_handler, /* DebugMonitor */
    NULL,
    qanas_fault_handler, /* PendSV */
    SysTick_Handler,
};
