/* The few Cortex-M system registers the ports touch (addresses from the Armv7-M and
 * Armv8-M architecture reference manuals; identical on M4, M7 and M55). */
#ifndef QANAS_CORTEX_M_H_
#define QANAS_CORTEX_M_H_

#include <stdint.h>

#define QANAS_REG32(address) (*(volatile uint32_t *)(address))

/* SysTick: 24-bit down counter. */
#define SYST_CSR QANAS_REG32(0xE000E010u)
#define SYST_RVR QANAS_REG32(0xE000E014u)
#define SYST_CVR QANAS_REG32(0xE000E018u)
#define SYST_CSR_ENABLE (1u << 0)
#define SYST_CSR_TICKINT (1u << 1)
#define SYST_CSR_CLKSOURCE_CPU (1u << 2)
#define SYST_MAX_RELOAD 0x00FFFFFFu

/* Debug: DEMCR.TRCENA gates the DWT; DWT CYCCNT counts core cycles. */
#define DEMCR QANAS_REG32(0xE000EDFCu)
#define DEMCR_TRCENA (1u << 24)
#define DWT_CTRL QANAS_REG32(0xE0001000u)
#define DWT_CYCCNT QANAS_REG32(0xE0001004u)
#define DWT_LAR QANAS_REG32(0xE0001FB0u)
#define DWT_CTRL_CYCCNTENA (1u << 0)
#define DWT_LAR_UNLOCK 0xC5ACCE55u

/* System control block. */
#define SCB_CCR QANAS_REG32(0xE000ED14u)
#define SCB_CCR_IC (1u << 17)
#define SCB_ICIALLU QANAS_REG32(0xE000EF50u)

#endif /* QANAS_CORTEX_M_H_ */
