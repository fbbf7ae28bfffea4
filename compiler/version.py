"""The generation of the compiler's kernels, for measurements that depend on them.

Instruction counts and latencies measured on compiled models (the committed per-block
latency tables in `targets/luts/`, benchmark results) are facts about one generation
of lowering, scheduling, kernels and runtime. `KERNEL_GENERATION` names it: a table
records the generation it was measured with, and a table of another generation is not
used for a search (it is rebuilt with ``qanas lut build``).

Bump it in the same change that alters what compiled kernels execute (a new lowering,
schedule rule, micro-kernel or runtime loop), and rebuild the committed tables.

Generations:
    1. TVM's scalar NCHW kernels; explicit pad kernels; int32 resize gathers.
    2. Zero-point padding read inside conv and pool kernels (borders split from the
       interior, ``-funswitch-loops``); int8-in/int8-out resize kernels; fused inverted
       residuals with a ring buffer of expanded rows (``--optimise size``, the default).
    3. The int8 kernel library (``runtime/c/kernels``, NHWC, DSP/Helium/NEON/AVX2) runs
       convolutions, average/global pooling and add/sub/mul
       (`compiler.passes.offload_kernels`); transposes where TVM kernels meet it.
    4. Library kernels in blocks: DSP pointwise/conv in 4-pixel blocks, depthwise border
       windows on the SIMD path; ``--optimise speed`` fuses inverted residuals into
       ``qanas_inverted_residual_s8`` when the library is on; int4-weight convolutions.
    5. Library int8 resize (``qanas_resize_s8``), a DSP stem path for 3-channel 3x3
       convolutions and in-place strided 1x1s, the integer softmax (``qanas_softmax_s8``),
       and ``--optimise size``'s patch stage on the library (``qanas_patch_stage_s8``)
       when its head is a chain of convolutions.
    6. The int8 resize's tie-free requantization bounded by the accumulator's range (a
       calibrated multiplier with trailing zero bits no longer sends a resize to the exact
       scalar formula); int4 expand/project stages inside the fused inverted residual and
       the patch stage; Helium int4-weight convolutions on Cortex-M55.
"""

KERNEL_GENERATION = 6
