/* Per-kernel timing hooks for firmware builds. model.h includes this header when it is
 * on the include path; with -DQANAS_PROFILE_LAYERS each kernel call is bracketed by
 * reads of the port's tick counter (the cost of two reads per kernel is then part of
 * the whole-run time too, so profile and benchmark in separate builds). */
#ifndef QANAS_PROFILE_H_
#define QANAS_PROFILE_H_

#if defined(QANAS_PROFILE_LAYERS)
void qanas_profile_kernel_begin(unsigned index);
void qanas_profile_kernel_end(unsigned index);
#define QANAS_KERNEL_BEGIN(index, name) qanas_profile_kernel_begin((unsigned)(index))
#define QANAS_KERNEL_END(index, name) qanas_profile_kernel_end((unsigned)(index))
#endif

#endif /* QANAS_PROFILE_H_ */
