/* Port for real Cortex-M4/M7/M55 boards.
 *
 * Timer: the DWT cycle counter (CYCCNT), which counts core clock cycles on M4, M7 and
 * M55 silicon; 32 bits wrap every 2^32 cycles (20 s at 216 MHz), so qanas_port_ticks
 * extends it to 64 bits whenever it is read (the harness reads it around every run).
 *
 * Console: semihosting through the debug probe by default (pyOCD `--semihosting`,
 * OpenOCD `arm semihosting enable`); with -DQANAS_IO_UART, the board's UART through
 * three functions the board file provides (docs/porting-a-board.md):
 *   void qanas_board_uart_init(uint32_t core_clock_hz, uint32_t baud);
 *   void qanas_board_uart_write_byte(uint8_t byte);
 *   int qanas_board_uart_read_byte(void);   (blocking)
 * On a Cortex-M7 the instruction cache is enabled at init, as a real deployment would.
 */
#include <stddef.h>
#include <stdint.h>

#include "cortex_m.h"
#include "port.h"
#include "semihosting.h"

#ifndef QANAS_PORT_CLOCK_HZ
#error "qanas: define QANAS_PORT_CLOCK_HZ (the core clock) for the cortex-m-board port"
#endif

static uint32_t g_last_cyccnt = 0;
static uint64_t g_cycles_high = 0;
static char g_command_line[128];

void SysTick_Handler(void) {}

uint64_t qanas_port_ticks(void) {
  const uint32_t now = DWT_CYCCNT;
  if (now < g_last_cyccnt) {
    g_cycles_high += (uint64_t)1u << 32;
  }
  g_last_cyccnt = now;
  return g_cycles_high + now;
}

uint32_t qanas_port_tick_hz(void) { return (uint32_t)QANAS_PORT_CLOCK_HZ; }

const char *qanas_port_tick_unit(void) { return "cycles"; }

#if defined(QANAS_IO_UART)
void qanas_board_uart_init(uint32_t core_clock_hz, uint32_t baud);
void qanas_board_uart_write_byte(uint8_t byte);
int qanas_board_uart_read_byte(void);

static void ConsoleInit(void) { qanas_board_uart_init((uint32_t)QANAS_PORT_CLOCK_HZ, 115200u); }

void qanas_port_write(const char *text, size_t length) {
  for (size_t i = 0; i < length; ++i) {
    qanas_board_uart_write_byte((uint8_t)text[i]);
  }
}

int qanas_port_read_byte(void) { return qanas_board_uart_read_byte(); }

int qanas_port_interactive(void) { return 1; }
#else
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
  DEMCR |= DEMCR_TRCENA;
  DWT_LAR = DWT_LAR_UNLOCK; /* needed on Cortex-M7, ignored elsewhere */
  DWT_CYCCNT = 0u;
  DWT_CTRL |= DWT_CTRL_CYCCNTENA;
#if defined(__ARM_ARCH_7EM__) && defined(QANAS_PORT_CORTEX_M7)
  __asm__ volatile("dsb\n\tisb" ::: "memory");
  SCB_ICIALLU = 0u;
  __asm__ volatile("dsb\n\tisb" ::: "memory");
  SCB_CCR |= SCB_CCR_IC;
  __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
  ConsoleInit();
}

void qanas_port_exit(int status) {
#if defined(QANAS_IO_UART)
  (void)status;
  for (;;) {
  }
#else
  qanas_semihosting_exit(status);
#endif
}
