/* Port for the Arm MPS2/MPS3 FPGA images that QEMU models (mps2-an386 Cortex-M4,
 * mps2-an500 Cortex-M7, mps3-an547 Cortex-M55); it also runs on the real FPGA boards.
 *
 * Timer: QEMU 7.2 does not model the DWT cycle counter (CYCCNT reads as zero), so time
 * is the SysTick, clocked by the CPU clock (QANAS_PORT_CLOCK_HZ: 25 MHz on MPS2, 32 MHz
 * on MPS3). Run with `-icount shift=0`, QEMU advances virtual time by 1 ns per
 * instruction, so a tick is 1e9 / QANAS_PORT_CLOCK_HZ instructions (40 on MPS2) and
 * counts are identical run to run. SysTick wraps every 2^24 ticks; the wrap interrupt
 * extends it to 64 bits.
 *
 * Console: semihosting (QEMU -semihosting) by default; with -DQANAS_IO_UART the CMSDK
 * APB UART at QANAS_PORT_UART_BASE, driven by the serial protocol.
 */
#include <stddef.h>
#include <stdint.h>

#include "cortex_m.h"
#include "port.h"
#include "semihosting.h"

#ifndef QANAS_PORT_CLOCK_HZ
#error "qanas: define QANAS_PORT_CLOCK_HZ (the SysTick clock) for the qemu-mps port"
#endif

static volatile uint32_t g_systick_wraps = 0;
static char g_command_line[128];

void SysTick_Handler(void) { g_systick_wraps = g_systick_wraps + 1u; }

uint64_t qanas_port_ticks(void) {
  uint32_t wraps;
  uint32_t value;
  do {
    wraps = g_systick_wraps;
    value = SYST_CVR;
  } while (wraps != g_systick_wraps);
  return (uint64_t)wraps * (SYST_MAX_RELOAD + 1u) + (uint64_t)(SYST_MAX_RELOAD - value);
}

uint32_t qanas_port_tick_hz(void) { return (uint32_t)QANAS_PORT_CLOCK_HZ; }

const char *qanas_port_tick_unit(void) { return "systick"; }

#if defined(QANAS_IO_UART)
#ifndef QANAS_PORT_UART_BASE
#error "qanas: define QANAS_PORT_UART_BASE (CMSDK UART address) for -DQANAS_IO_UART"
#endif
/* CMSDK APB UART registers (Arm Cortex-M System Design Kit TRM). */
#define UART_DATA QANAS_REG32(QANAS_PORT_UART_BASE + 0x00u)
#define UART_STATE QANAS_REG32(QANAS_PORT_UART_BASE + 0x04u)
#define UART_CTRL QANAS_REG32(QANAS_PORT_UART_BASE + 0x08u)
#define UART_BAUDDIV QANAS_REG32(QANAS_PORT_UART_BASE + 0x10u)
#define UART_STATE_TX_FULL (1u << 0)
#define UART_STATE_RX_FULL (1u << 1)
#define UART_CTRL_TX_ENABLE (1u << 0)
#define UART_CTRL_RX_ENABLE (1u << 1)
#define kUartBaud 115200u

static void ConsoleInit(void) {
  UART_BAUDDIV = (uint32_t)QANAS_PORT_CLOCK_HZ / kUartBaud;
  UART_CTRL = UART_CTRL_TX_ENABLE | UART_CTRL_RX_ENABLE;
}

void qanas_port_write(const char *text, size_t length) {
  for (size_t i = 0; i < length; ++i) {
    while ((UART_STATE & UART_STATE_TX_FULL) != 0u) {
    }
    UART_DATA = (uint32_t)(uint8_t)text[i];
  }
}

int qanas_port_read_byte(void) {
  while ((UART_STATE & UART_STATE_RX_FULL) == 0u) {
  }
  return (int)(UART_DATA & 0xFFu);
}

int qanas_port_interactive(void) { return 1; }

#else /* semihosting */
static void ConsoleInit(void) {
  if (qanas_semihosting_command_line(g_command_line, sizeof(g_command_line)) != 0) {
    g_command_line[0] = '\0';
  }
}

void qanas_port_write(const char *text, size_t length) {
  qanas_semihosting_write(text, length);
}

int qanas_port_read_byte(void) { return -1; }

int qanas_port_interactive(void) { return 0; }
#endif

const char *qanas_port_command_line(void) { return g_command_line; }

void qanas_port_init(void) {
  SYST_CSR = 0u;
  SYST_RVR = SYST_MAX_RELOAD;
  SYST_CVR = 0u;
  SYST_CSR = SYST_CSR_ENABLE | SYST_CSR_TICKINT | SYST_CSR_CLKSOURCE_CPU;
  ConsoleInit();
}

void qanas_port_exit(int status) {
  qanas_semihosting_exit(status);
}
