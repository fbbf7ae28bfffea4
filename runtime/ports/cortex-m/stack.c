/* Stack peak by painting; see stack.h. */
#include "stack.h"

#include <stdint.h>

extern uint32_t __stack_start;
extern uint32_t __stack_end;

size_t qanas_stack_size(void) {
  return (size_t)((uintptr_t)&__stack_end - (uintptr_t)&__stack_start);
}

size_t qanas_stack_peak(void) {
  const volatile uint32_t *word = &__stack_start;
  const uint32_t *end = &__stack_end;
  while (word < end && *word == QANAS_STACK_PAINT) {
    ++word;
  }
  return (size_t)((uintptr_t)end - (uintptr_t)word);
}
