/* Stack painting: startup.S fills the unused main stack with QANAS_STACK_PAINT; the
 * deepest word that no longer holds the pattern is the peak the program reached. */
#ifndef QANAS_STACK_H_
#define QANAS_STACK_H_

#include <stddef.h>

#define QANAS_STACK_PAINT 0xC0DEC0DEu

/* Bytes of the reserved stack. */
size_t qanas_stack_size(void);

/* Peak stack use in bytes since reset (a lower bound if a frame wrote the pattern). */
size_t qanas_stack_peak(void);

#endif /* QANAS_STACK_H_ */
