/* Reset handler shared by every Cortex-M port (Armv7E-M and Armv8.1-M, Thumb-2).
 *
 * Written in assembly so that nothing runs before the FPU (and MVE, on the M55) is
 * enabled: compiled C may use FP or vector registers for a plain copy loop.
 * 1. CPACR: full access to CP10/CP11 (FPU and MVE).
 * 2. Copy .data from its load address in flash; zero .bss.
 * 3. Paint the unused stack with QANAS_STACK_PAINT so qanas_stack_peak() can measure
 *    the deepest use later (from the bottom of the stack up to 64 bytes below sp).
 * 4. Call main; if it returns, call qanas_port_exit with its value.
 */
    .syntax unified
    .thumb

    .equ CPACR, 0xE000ED88
    .equ STACK_PAINT, 0xC0DEC0DE

    .section .text.Reset_Handler, "ax", %progbits
    .global Reset_Handler
    .type Reset_Handler, %function
    .thumb_func
Reset_Handler:
    ldr r0, =CPACR
    ldr r1, [r0]
    orr r1, r1, #(0xF << 20)
    str r1, [r0]
    dsb
    isb

    ldr r0, =__data_load
    ldr r1, =__data_start
    ldr r2, =__data_end
1:  cmp r1, r2
    bhs 2f
    ldr r3, [r0], #4
    str r3, [r1], #4
    b 1b
2:
    ldr r1, =__bss_start
    ldr r2, =__bss_end
    movs r3, #0
3:  cmp r1, r2
    bhs 4f
    str r3, [r1], #4
    b 3b
4:
    ldr r1, =__stack_start
    mov r2, sp
    sub r2, r2, #64
    ldr r3, =STACK_PAINT
5:  cmp r1, r2
    bhs 6f
    str r3, [r1], #4
    b 5b
6:
    bl main
    bl qanas_port_exit
7:  b 7b
    .size Reset_Handler, . - Reset_Handler
    .pool
