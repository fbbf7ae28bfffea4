"""Fused blocks' library calls remembered across modules (the plan-only mode's offload).

`compiler.passes.offload_fused_blocks.fused_block_call` turns a fused inverted residual
(a ``Primitive`` Relax function called with its constants) into one kernel-library call:
it binds the constants into the function (``bind_params``, milliseconds per block), reads
the three convolutions and their requantization back and packs their weights. A search
plans hundreds of subnets of one space whose blocks (the same choices at the same
position, so the same weights, sliced from one supernet) recur. While a `BlockMemo` is
active (`BlockMemo.active`, which `compiler.plan_only.plan_model_memory` does),
`fused_block_call` answers a block met before from memory.

Why the answer is the one packing would give: the call, its packed constants and its
output shape are a function of the grouped function (``tvm_ffi.structural_equal``:
operators, attributes, shapes, dtypes), of its constants' values, of the PrimFuncs it
calls (a zero-point-padded convolution's tag is an attribute of its PrimFunc) and of how
the weights are packed (the kernel path, ``isa``, and which weights are int4). The key
is exactly those; a hit is confirmed by structural equality, not by the hash alone. The
function names the PrimFuncs it calls by global variables of its own module, which never
equal another module's: they are compared as free variables (``map_free_vars``), each
paired with the other's in the order the bindings call them, with the PrimFuncs
themselves listed in that order beside it. Only the block's input variable comes from
the call itself. Like `compiler.te_memo`, the memo serves the plan-only mode: `compile_model`
packs every block itself.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

_ACTIVE: contextvars.ContextVar[BlockMemo | None] = contextvars.ContextVar(
    "qanas_block_memo", default=None)


class BlockMemo:
    """Library calls of fused blocks remembered by structure (see the module docstring).

    Args:
        max_entries: blocks remembered; the oldest are dropped beyond it.

    Attributes:
        hits, misses: blocks answered from memory, and packed.
    """

    def __init__(self, max_entries: int = 4096):
        self.max_entries = max_entries
        self._entries: dict[tuple, list[tuple[tuple, object]]] = {}
        self._count = 0
        self.hits = self.misses = 0

    @contextlib.contextmanager
    def active(self) -> Iterator[BlockMemo]:
        """`fused_block_call` inside uses this memo."""
        token = _ACTIVE.set(self)
        try:
            yield self
        finally:
            _ACTIVE.reset(token)

    @staticmethod
    def _parts(func, consts, mod) -> tuple:
        """What the answer depends on: the function, its constants and the PrimFuncs it
        calls, in the order its bindings call them."""
        import tvm
        from tvm import relax

        from compiler.passes._common import variable_bindings

        callees = []
        for value in variable_bindings(func).values():
            if isinstance(value, relax.Call):
                callees += [mod[x] for x in (value.op, *value.args)
                            if isinstance(x, tvm.ir.GlobalVar)]
        return (func, *consts, *callees)

    def get(self, func, consts, mod, path: tuple):
        """The remembered answer for `func` called with `consts` in `mod`, or None.

        Args:
            func: the fused block's grouped Relax function.
            consts: the constants it is called with (after its input).
            mod: the module holding it and the PrimFuncs it calls.
            path: how the weights are packed: the kernel path (``isa``) and the
                int4 weights' digests (`compiler.int4.weight_digest`), hashable.
        """
        import tvm_ffi

        parts = self._parts(func, consts, mod)
        key = (tvm_ffi.structural_hash(parts, map_free_vars=True), path)
        for other, answer in self._entries.get(key, []):
            if tvm_ffi.structural_equal(parts, other, map_free_vars=True):
                self.hits += 1
                return answer
        self.misses += 1
        return None

    def put(self, func, consts, mod, path: tuple, answer) -> None:
        """Remembers `answer` (what `fused_block_call` returns, less the input variable)."""
        import tvm_ffi

        if self._count >= self.max_entries:
            self._count -= len(self._entries.pop(next(iter(self._entries))))
        parts = self._parts(func, consts, mod)
        self._entries.setdefault((tvm_ffi.structural_hash(parts, map_free_vars=True), path),
                                 []).append(
            (parts, answer))
        self._count += 1


def active_block_memo() -> BlockMemo | None:
    """The `BlockMemo` active in this context, if any."""
    return _ACTIVE.get()
