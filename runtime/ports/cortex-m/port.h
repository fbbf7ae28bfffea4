/* The port interface: what the firmware harness needs from a board.
 *
 * A port is a folder under runtime/ports/ with one port.c implementing these functions
 * for one family of boards. The shared Cortex-M startup (startup.S, vectors.c) and the
 * linker script template live in runtime/ports/cortex-m/. Nothing here allocates.
 */
#ifndef QANAS_PORT_H_
#define QANAS_PORT_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Starts the timer and the console. Called once, first thing in main. */
void qanas_port_init(void);

/* A free-running 64-bit tick counter (see qanas_port_tick_unit). */
uint64_t qanas_port_ticks(void);

/* Ticks per second of qanas_port_ticks. */
uint32_t qanas_port_tick_hz(void);

/* What one tick is: "cycles" (DWT CYCCNT on a board) or "systick" (SysTick under QEMU,
 * where -icount shift=0 makes one instruction take 1 ns of virtual time). */
const char *qanas_port_tick_unit(void);

/* Writes `length` bytes to the console (semihosting or UART). */
void qanas_port_write(const char *text, size_t length);

/* Blocks for one byte from the console; returns -1 when the console cannot read. */
int qanas_port_read_byte(void);

/* The command line the runner passed (semihosting), or "" when there is none. */
const char *qanas_port_command_line(void);

/* Non-zero when the console is a UART driven by the serial protocol (docs/serial-protocol.md),
 * zero when the harness runs once from its command line and exits. */
int qanas_port_interactive(void);

/* Ends the program: 0 for success. Under QEMU this exits the emulator. */
void qanas_port_exit(int status) __attribute__((noreturn));

#ifdef __cplusplus
}
#endif

#endif /* QANAS_PORT_H_ */
