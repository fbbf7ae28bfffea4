"""The hand-written int8 kernel library (`runtime/c/kernels/`): offline packing and metadata.

`packing` lays weights, biases and requantization constants out the way the C kernels
read them; `isa` says which instruction-set path a core compiles to. See docs/kernels.md.
"""

from compiler.kernels.isa import (
    ALL_KERNEL_SOURCES,
    ATTENTION_KERNEL_SOURCES,
    KERNEL_SOURCES,
    KERNELS_DIR,
    S4_KERNEL_SOURCES,
    isa_for_cpu,
)
from compiler.kernels.packing import (
    AddParams,
    PackedConv,
    Requant,
    add_params,
    pack_conv,
    pack_depthwise,
    pool_requant,
    requant,
)

__all__ = ["ALL_KERNEL_SOURCES", "ATTENTION_KERNEL_SOURCES", "KERNELS_DIR", "KERNEL_SOURCES",
           "S4_KERNEL_SOURCES", "AddParams", "PackedConv", "Requant",
           "add_params", "isa_for_cpu", "pack_conv", "pack_depthwise", "pool_requant",
           "requant"]
