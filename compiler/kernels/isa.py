"""Which instruction-set path of the kernel library a core compiles to, and its sources.

The C code picks its path from the compiler's own feature macros (``__ARM_FEATURE_MVE``,
``__ARM_FEATURE_DSP``, ``__ARM_NEON``, ``__AVX2__``), so the target's ``-mcpu`` flags
decide; `isa_for_cpu` states the same mapping for reports and tests, and
``-DQANAS_KERNELS_PORTABLE`` forces portable C.
"""

from __future__ import annotations

from pathlib import Path

KERNELS_DIR = Path(__file__).resolve().parents[2] / "runtime" / "c" / "kernels"
"""The C library: ``qanas_kernels.h`` (API) and the sources below."""

KERNEL_SOURCES = ("qk_isa.c", "qk_requant.c", "qk_conv.c", "qk_depthwise.c", "qk_pool.c",
                  "qk_elementwise.c", "qk_irb.c", "qk_resize.c")
"""The C files of the int8 convolution, pooling, element-wise and resize library (issue 12's
set, whose cortex-m4 text has a 20 KB budget; unused functions go with --gc-sections)."""

S4_KERNEL_SOURCES = ("qk_conv_s4.c",)
"""The int4-weight convolutions (``qanas_kernels_s4.h``), built with the library; they use
its requantization (docs/int4-weights.md)."""

ATTENTION_KERNEL_SOURCES = ("qk_softmax.c", "qk_matmul.c")
"""Attention's integer softmax and int8 matmul (``qanas_softmax_s8``, ``qanas_matmul_s8``,
docs/efficient-topformer.md)."""

ALL_KERNEL_SOURCES = KERNEL_SOURCES + S4_KERNEL_SOURCES + ATTENTION_KERNEL_SOURCES
"""What a project calling the library compiles."""

_CPU_ISA = {
    "cortex-m0": "portable", "cortex-m0plus": "portable", "cortex-m3": "portable",
    "cortex-m4": "dsp", "cortex-m7": "dsp", "cortex-m33": "dsp", "cortex-m35p": "dsp",
    "cortex-m55": "mve", "cortex-m85": "mve",
}


def isa_for_cpu(cpu: str, *, aarch64: bool = False, avx2: bool = False) -> str:
    """The path (``"mve"``, ``"dsp"``, ``"neon"``, ``"avx2"``, ``"portable"``) for a core.

    Args:
        cpu: an Arm ``-mcpu`` name (``"cortex-m4"``), or ``"native"`` for the host.
        aarch64: the host is aarch64 (NEON is part of the base ISA there).
        avx2: the host build passes ``-mavx2`` (or ``-march`` with AVX2).

    Raises:
        ValueError: an Arm core the table does not know, naming the known ones.
    """
    if cpu == "native":
        return "neon" if aarch64 else ("avx2" if avx2 else "portable")
    if cpu not in _CPU_ISA:
        raise ValueError(f"unknown core {cpu!r} for the kernel library; known: "
                         f"{', '.join(sorted(_CPU_ISA))} or 'native'")
    return _CPU_ISA[cpu]
