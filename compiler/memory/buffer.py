"""What the memory planner plans: buffers with a size, an alignment and a lifetime.

A *step* is the index of a kernel call in the AOT execution plan (0, 1, 2, ...).
A buffer is live over the inclusive step interval ``[first, last]``: ``first`` is
the step of the kernel that writes it (0 for a graph input) and ``last`` the step
of the last kernel that reads it (the final step for a graph output). A kernel's
inputs and its output are all live at the kernel's own step, so the planner never
lets an output alias an input that the same kernel still reads.

In-place execution (an output written over its dying input) is deliberately not
modelled: it is only safe when the two buffers start at exactly the same offset
and the kernel reads each element before writing it, which is a property of the
kernel, not of lifetimes. The planner stays simple and always correct instead.

Kernel scratch (``TVMBackendAllocWorkspace``) is planned like any other buffer:
one buffer per kernel that needs scratch, live only at that kernel's step
(``first == last == step``). `workspace_buffers` builds them; the runtime hands
the kernel a bump allocator over that region, so no heap is used at run time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

DEFAULT_ALIGNMENT = 16
"""Bytes; enough for 128-bit SIMD loads (Helium/MVE, NEON, SSE) and for DLTensor data."""

WORKSPACE_PREFIX = "workspace"
"""Buffers made by `workspace_buffers` are named ``f"{WORKSPACE_PREFIX}_{step}"``."""


def align_up(value: int, alignment: int) -> int:
    """Rounds `value` up to a multiple of `alignment` (a power of two)."""
    return (value + alignment - 1) & -alignment


@dataclass(frozen=True)
class BufferLifetime:
    """One buffer to place in the arena.

    Attributes:
        name: unique within a plan; the emitter uses it as the C symbol of the offset.
        size: bytes the buffer needs (0 is allowed and occupies nothing).
        first: step of the kernel call that writes it (inclusive).
        last: step of the last kernel call that reads it (inclusive), ``last >= first``.
        alignment: required alignment of its offset in bytes, a power of two. The
            planner reserves ``aligned_size`` bytes so that neighbours stay aligned.

    Example:
        >>> BufferLifetime("conv0_out", size=3000, first=0, last=2).aligned_size
        3008
    """

    name: str
    size: int
    first: int
    last: int
    alignment: int = DEFAULT_ALIGNMENT

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"buffer name must be a non-empty string, got {self.name!r}")
        for attr in ("size", "first", "last", "alignment"):
            value = getattr(self, attr)
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(
                    f"buffer {self.name!r}: {attr} must be an int, got {type(value).__name__} "
                    f"{value!r}; convert numpy scalars with int()"
                )
        if self.size < 0:
            raise ValueError(f"buffer {self.name!r}: size must be >= 0 bytes, got {self.size}")
        if self.first < 0 or self.last < self.first:
            raise ValueError(
                f"buffer {self.name!r}: lifetime [first={self.first}, last={self.last}] must "
                "satisfy 0 <= first <= last (steps are kernel-call indices, both inclusive)"
            )
        if self.alignment <= 0 or self.alignment & (self.alignment - 1):
            raise ValueError(
                f"buffer {self.name!r}: alignment must be a power of two, got {self.alignment}"
            )

    @property
    def aligned_size(self) -> int:
        """`size` rounded up to `alignment`: the bytes the planner reserves."""
        return align_up(self.size, self.alignment)

    def overlaps_in_time(self, other: BufferLifetime) -> bool:
        """True when both buffers are live at some common step."""
        return self.first <= other.last and other.first <= self.last


def workspace_bytes(allocations: Iterable[int], alignment: int = DEFAULT_ALIGNMENT) -> int:
    """Bytes of one kernel's scratch region that serves `allocations` in a bump allocator.

    A TIR kernel may call ``TVMBackendAllocWorkspace`` several times; the runtime
    serves the calls from the kernel's planned region, rounding each to `alignment`.
    The region must therefore hold the sum of the rounded sizes.

    Example:
        >>> workspace_bytes([100, 4])
        128
    """
    return sum(align_up(int(n), alignment) for n in allocations)


def workspace_buffers(
    workspaces: Mapping[int, int],
    alignment: int = DEFAULT_ALIGNMENT,
    prefix: str = WORKSPACE_PREFIX,
) -> list[BufferLifetime]:
    """One buffer per kernel scratch region, live only at its kernel's step.

    Args:
        workspaces: step → scratch bytes of the kernel called at that step (for
            several allocations, use `workspace_bytes`). Steps with 0 bytes are skipped.
        alignment: alignment of each region.
        prefix: the buffers are named ``f"{prefix}_{step}"``.

    Returns:
        Buffers ready to be planned together with the activation buffers.

    Example:
        >>> workspace_buffers({3: 256})
        [BufferLifetime(name='workspace_3', size=256, first=3, last=3, alignment=16)]
    """
    return [
        BufferLifetime(f"{prefix}_{step}", int(size), int(step), int(step), alignment)
        for step, size in sorted(workspaces.items())
        if size
    ]
