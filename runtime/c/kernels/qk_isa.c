/* The name of the instruction set this build of the kernel library uses. */
#include "qk_internal.h"

const char *qanas_kernels_isa(void) {
#if defined(QK_ISA_MVE)
  return "mve";
#elif defined(QK_ISA_DSP)
  return "dsp";
#elif defined(QK_ISA_NEON)
  return "neon";
#elif defined(QK_ISA_AVX2)
  return "avx2";
#else
  return "portable";
#endif
}
