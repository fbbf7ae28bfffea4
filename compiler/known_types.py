"""Emitting Relax calls whose type inference is slow, with the type met before.

``BlockBuilder.emit`` normalises a new call by inferring its type. For most operators
that costs microseconds; for the layout-aware ones (``relax.nn.conv2d`` and the 2-D
pools and resize, `SLOW_INFERENCE`) it costs about a millisecond, since each builds
its layouts' index maps, and a segmentation net's import, integer lowering and block
fusion emit one per convolution, several times over.

`emit` gives such a call the type inferred before for the same operator, attributes
and argument types (``tvm_ffi.structural_equal``), then emits it: the builder keeps a
type it is given, so nothing is inferred. The inference is a function of exactly
those, so the module is the one plain ``emit`` builds, structurally equal; the
compiler and its plan-only mode both use it. Calls of other operators, and calls of
arguments without a type, are emitted as they are.
"""

from __future__ import annotations

import tvm
import tvm_ffi
from tvm import relax
from tvm.relax.expr import _update_type

SLOW_INFERENCE = frozenset({"relax.nn.conv2d", "relax.nn.avg_pool2d", "relax.nn.max_pool2d",
                            "relax.image.resize2d"})
"""Operators whose type inference takes about a millisecond (layout index maps)."""

MAX_ENTRIES = 4096
"""Types remembered; the oldest are dropped beyond it."""


def _typed(expr) -> bool:
    """`expr` has its type (a call not yet normalised has the bare ``ir.Type``)."""
    return type(expr.ty) is not tvm.ir.Type


def _signature(call) -> tuple | None:
    """(operator name, attributes, argument types) of an untyped slow call, or None."""
    if (not isinstance(call, relax.Call) or not isinstance(call.op, tvm.ir.Op)
            or call.op.name not in SLOW_INFERENCE or call.ty_args or _typed(call)):
        return None
    types = []
    for arg in call.args:
        if not isinstance(arg, (relax.Var, tvm.ir.GenericConst)) or not _typed(arg):
            return None
        types.append(arg.ty)
    return call.op.name, call.attrs, tuple(types)


class _Types:
    """Inferred types by signature, confirmed by structural equality."""

    def __init__(self, max_entries: int):
        self.max_entries = max_entries
        self._entries: dict[tuple, list[tuple[tuple, object]]] = {}
        self._count = 0

    @staticmethod
    def key(signature: tuple) -> tuple:
        return signature[0], tvm_ffi.structural_hash(signature[1:])

    def get(self, key: tuple, signature: tuple):
        for other, ty in self._entries.get(key, []):
            if tvm_ffi.structural_equal(signature[1:], other):
                return ty
        return None

    def put(self, key: tuple, signature: tuple, ty) -> None:
        if self._count >= self.max_entries:
            self._count -= len(self._entries.pop(next(iter(self._entries))))
        self._entries.setdefault(key, []).append((signature[1:], ty))
        self._count += 1


_TYPES = _Types(MAX_ENTRIES)


def emit(builder: relax.BlockBuilder, expr: relax.Expr, name_hint: str = "",
         output: bool = False) -> relax.Var:
    """``builder.emit(expr, name_hint)`` (``emit_output`` when `output`), with the type
    of a slow operator's call taken from an equal call emitted before."""
    signature = _signature(expr)
    key = ty = None
    if signature is not None:
        key = _TYPES.key(signature)
        ty = _TYPES.get(key, signature)
        if ty is not None:
            _update_type(expr, ty)
    var = builder.emit_output(expr, name_hint) if output else builder.emit(expr, name_hint)
    if signature is not None and ty is None:
        _TYPES.put(key, signature, var.ty)
    return var
