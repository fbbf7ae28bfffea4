/* Compiler portability macros used by emitted models and the runtime. */
#ifndef QANAS_PLATFORM_H_
#define QANAS_PLATFORM_H_

/* Aligns a variable (arena, weights) to n bytes. */
#if defined(__GNUC__) || defined(__clang__)
#define QANAS_ALIGNED(n) __attribute__((aligned(n)))
#elif defined(_MSC_VER)
#define QANAS_ALIGNED(n) __declspec(align(n))
#else
#error "qanas: define QANAS_ALIGNED(n) for this compiler"
#endif

#endif /* QANAS_PLATFORM_H_ */
