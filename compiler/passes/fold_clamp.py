"""FoldIntegerClamp: an int8 clip after a requantize or table lookup folds into it.

Brevitas QCDQ exports narrow-range or sub-8-bit activations as
``QuantizeLinear → Clip → DequantizeLinear``; after lowering the Clip acts on the
int8 result of a requantize (``astype(clip(v, a, b), int8)``) or of a table lookup
(``take(T, i)``). It is folded into the requantize bounds or into the table.
"""

from __future__ import annotations

import numpy as np
from tvm import relax
from tvm.relax.expr_functor import PyExprMutator, mutator

from compiler.passes._common import (
    const_value,
    dtype_of,
    function_pass,
    is_op,
    items,
    prim_number,
)


class _ClampFolder(PyExprMutator):
    def __init__(self, mod=None):
        super().__init__(mod)
        self.binds: dict[relax.Var, relax.Expr] = {}

    def fold(self, func: relax.Function) -> relax.Function:
        for block in items(func.body.blocks):
            for b in items(block.bindings):
                self.binds[b.var] = b.value
        if not any(is_op(v, "relax.clip") and dtype_of(v) == "int8" for v in self.binds.values()):
            return func  # no int8 clip to fold (the lowering before swept its dead code)
        return relax.analysis.remove_all_unused(self.visit_expr(func))

    def visit_call_(self, call: relax.Call) -> relax.Expr:  # noqa: D102 - visitor hook
        new = super().visit_call_(call)
        if not is_op(call, "relax.clip") or dtype_of(call) != "int8":
            return new
        lo, hi = int(prim_number(call.args[1])), int(prim_number(call.args[2]))
        src = self.binds.get(call.args[0])
        if is_op(src, "relax.astype"):
            inner = self.binds.get(src.args[0])
            if is_op(inner, "relax.clip"):
                a = max(int(prim_number(inner.args[1])), lo)
                b = min(int(prim_number(inner.args[2])), hi)
                clipped = self.builder_.emit(relax.op.clip(
                    self.visit_expr(inner.args[0]), relax.prim_value(a), relax.prim_value(b)))
                return relax.op.astype(clipped, "int8")
        if is_op(src, "relax.take") and const_value(src.args[0]) is not None:
            table = np.clip(const_value(src.args[0]), lo, hi).astype(np.int8)
            return relax.op.take(relax.const(table, "int8"), self.visit_expr(src.args[1]),
                                 axis=int(src.attrs.axis))
        return new


def FoldIntegerClamp():  # noqa: N802 - TVM pass naming
    """The pass; run it after the lowering passes."""

    return function_pass("FoldIntegerClamp",
                         lambda mod, func: mutator(_ClampFolder)(mod).fold(func))
