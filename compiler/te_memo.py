"""TE kernels remembered across modules (the plan-only mode's ``emit_te``).

The integer-lowering and offload passes emit some kernels from TE
(``BlockBuilder.emit_te``: `compiler.passes.resize_kernels.emit_kernel` for the padded
convolutions and resizes, `compiler.passes.offload_kernels` for the library calls).
Building the TE and its PrimFunc (``create_prim_func``) costs milliseconds per call, and
a search plans hundreds of subnets whose kernels (the same shapes, the same parameters)
recur. `emit_te` is ``bb.emit_te`` that, while a `TeMemo` is active (`TeMemo.active`,
which `compiler.plan_only.plan_model_memory` does), answers a call met before from
memory: a copy of the remembered PrimFunc with fresh definitions (``renew_defs``, so
no two functions of a module share a variable, as with ``emit_te``) is added to the
builder (``add_func``) under the name hint the call asks for and called on this call's
tensors.

Why the answer is the one ``emit_te`` would give: the PrimFunc a TE function builds is a
function of its arguments alone: the tensors' shapes and dtypes and the other arguments'
values. The key is exactly that: the TE function (a module-level function, by its
qualified name), each tensor argument's static shape and dtype, every other argument's
value (ints, floats, strings, None and lists/tuples of them). A call with anything else
(a ``functools.partial``, a symbolic shape, a TIR expression, an object argument) is
built every time. The call's arguments are the tensor arguments in order, as
``gen_call_tir_inputs`` collects them (checked when an entry is made). The PrimFunc's
buffer names are those of the first call met (``emit_te`` names a placeholder after
its Relax variable): names are not part of structural equality and change no size, so
the memo serves the plan-only mode, not the C generator, like
`compiler.legalize_memo`.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass

_ACTIVE: contextvars.ContextVar[TeMemo | None] = contextvars.ContextVar(
    "qanas_te_memo", default=None)


@dataclass(frozen=True)
class _Entry:
    func: object      # the PrimFunc gen_call_tir_inputs built
    out_ty: object    # the call's output type(s)


class _Unkeyed(Exception):
    """An argument the key cannot describe by value: build the kernel."""


class TeMemo:
    """PrimFuncs of TE calls remembered by key, for `emit_te` (see the module docstring).

    Args:
        max_entries: kernels remembered; the oldest are dropped beyond it.

    Attributes:
        hits, misses: calls answered from memory, and built.
    """

    def __init__(self, max_entries: int = 4096):
        self.max_entries = max_entries
        self._entries: dict[tuple, _Entry] = {}
        self.hits = self.misses = 0

    @contextlib.contextmanager
    def active(self) -> Iterator[TeMemo]:
        """`emit_te` calls inside use this memo."""
        token = _ACTIVE.set(self)
        try:
            yield self
        finally:
            _ACTIVE.reset(token)

    def emit(self, bb, te_func, args: tuple, kwargs: dict, name: str | None):
        """`emit_te` with this memo: the bound variable."""
        from tvm import relax
        from tvm.relax.utils import gen_call_tir_inputs
        from tvm.s_tir import renew_defs

        tensors: list = []
        try:
            key = (_function_key(te_func), _value_key(args, tensors),
                   _value_key(kwargs, tensors))
        except _Unkeyed:
            return bb.emit_te(te_func, *args, primfunc_name_hint=name, **kwargs)
        entry = self._entries.get(key)
        if entry is None:
            self.misses += 1
            func, call_args, out_ty = gen_call_tir_inputs(te_func, *args, **kwargs)
            if len(call_args) == len(tensors) and all(
                    a is t for a, t in zip(call_args, tensors, strict=True)):
                self._remember(key, _Entry(func, out_ty))
        else:
            self.hits += 1
            func, call_args, out_ty = renew_defs(entry.func), tensors, entry.out_ty
        gvar = bb.add_func(func, name or te_func.__name__)
        return bb.emit(relax.call_tir(gvar, call_args, out_ty))

    def _remember(self, key: tuple, entry: _Entry) -> None:
        if len(self._entries) >= self.max_entries:
            self._entries.pop(next(iter(self._entries)))
        self._entries[key] = entry


def emit_te(bb, te_func, *args, primfunc_name_hint: str | None = None, **kwargs):
    """``bb.emit_te(te_func, *args, primfunc_name_hint=..., **kwargs)``, answered from
    the active `TeMemo` when one is active and the call can be keyed."""
    memo = _ACTIVE.get()
    if memo is None:
        return bb.emit_te(te_func, *args, primfunc_name_hint=primfunc_name_hint, **kwargs)
    return memo.emit(bb, te_func, args, kwargs, primfunc_name_hint)


def _function_key(te_func) -> tuple:
    """A module-level function's qualified name (anything else cannot be keyed)."""
    import types

    if not isinstance(te_func, types.FunctionType) or "<" in te_func.__qualname__:
        raise _Unkeyed
    return te_func.__module__, te_func.__qualname__


def _value_key(value, tensors: list):
    """`value` by value, its Relax tensors by static shape and dtype (appended to
    `tensors` in ``gen_call_tir_inputs``'s order)."""
    from tvm import relax

    if value is None or isinstance(value, (bool, int, float, str)):
        return type(value).__name__, value  # True and 1 are different arguments
    if isinstance(value, (list, tuple)):
        return (type(value).__name__, *(_value_key(v, tensors) for v in value))
    if isinstance(value, dict):
        return ("dict", *((k, _value_key(v, tensors)) for k, v in value.items()))
    if isinstance(value, relax.Expr) and isinstance(value.ty, relax.TensorType):
        shape = value.ty.shape
        if not isinstance(shape, relax.ShapeExpr) or value.ty.vdevice is not None:
            raise _Unkeyed
        dims = []
        for d in shape.values:
            if not hasattr(d, "value"):
                raise _Unkeyed  # a symbolic dimension
            dims.append(int(d.value))
        tensors.append(value)
        return ("tensor", tuple(dims), str(value.ty.dtype))
    raise _Unkeyed
