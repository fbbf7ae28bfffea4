"""HoistDequantize: ``concat(dq(x_1), ..., dq(x_k))`` → ``dq(concat(x_1, ..., x_k))``, and
``move(dq(x))`` → ``dq(move(x))`` for the data movements reshape, transpose and slice.

Brevitas aligns the scales of tensors that meet in a concatenation (they share one
quantizer) and exports no QuantizeLinear after the Concat: the concatenated float
tensor feeds the next layer directly. When every input is dequantized with the same
per-tensor scale, zero point and storage type, concatenating the integers and
dequantizing once is exact, and it hands the consumer (a quantized conv, or a plain
requantization) the ``dequantize`` input its lowering pattern expects. Inputs with
different quantization are left alone: `LowerQuantizedConcat` handles those when a
quantize follows.

Attention splits a dequantized projection into heads with a chain of reshapes and a
transpose before its MatMul, and joins the heads the same way before the next quantizer
(``DQ → Reshape → Reshape → Transpose → MatMul``). A reshape, transpose or slice of a
per-tensor dequantized activation moves the integers instead, so each chain becomes one
``dequantize`` of moved int8 data and the consumer sees the pattern its lowering expects.
"""

from __future__ import annotations

import tvm
from tvm import relax
from tvm.relax.expr_functor import PyExprMutator, mutator

from compiler.passes._common import dtype_of, function_pass, is_op, qparams_of, variable_bindings

_MOVES = ("relax.reshape", "relax.permute_dims", "relax.strided_slice")


@mutator
class DequantizeHoister(PyExprMutator):
    """Moves a shared dequantize from the inputs of a concat to its output."""

    def __init__(self, mod: tvm.IRModule | None = None):
        super().__init__(mod)
        self.binds: dict[relax.Var, relax.Expr] = {}
        self.hoisted: dict[relax.Call, relax.Call] = {}  # a move → its new ``dq(move(x))``

    def lower_function(self, func: relax.Function) -> relax.Function:
        """Rewrites ``func`` and drops the bindings left dead."""
        self.binds = variable_bindings(func)
        return relax.analysis.remove_all_unused(self.visit_expr(func))

    def _producer(self, expr: relax.Expr) -> relax.Expr:
        while isinstance(expr, relax.Var) and expr in self.binds:
            expr = self.binds[expr]
        return expr

    def _activation_dq(self, expr: relax.Expr) -> tuple[relax.Expr, relax.Call] | None:
        """(new int8 data, the dequantize) of a per-tensor dequantized activation, else None."""
        src = self._producer(expr)
        if src in self.hoisted:
            dq = self.hoisted[src]
            return dq.args[0], dq
        if not is_op(src, "relax.dequantize") or isinstance(src.args[0], tvm.ir.GenericConst):
            return None
        params = qparams_of(src, dtype_of(src.args[0]))
        if params is None or not params.per_tensor:
            return None
        return self.visit_expr(src.args[0]), src

    def _moved(self, call: relax.Call, data: relax.Expr) -> relax.Expr:
        if is_op(call, "relax.reshape"):
            return relax.op.reshape(data, call.args[1])
        if is_op(call, "relax.permute_dims"):
            axes = call.attrs.axes
            return relax.op.permute_dims(data, None if axes is None else [int(a) for a in axes])
        a = call.args
        return relax.op.strided_slice(data, a[1], a[2], a[3], a[4] if len(a) > 4 else None)

    def visit_call_(self, call: relax.Call) -> relax.Expr:  # noqa: D102 - visitor hook
        new = super().visit_call_(call)
        if any(is_op(call, op) for op in _MOVES):
            found = self._activation_dq(call.args[0])
            if found is None:
                return new
            data, dq = found
            moved = self.builder_.emit(self._moved(call, data))
            self.hoisted[call] = relax.op.dequantize(moved, dq.args[1], dq.args[2], axis=0,
                                                     out_dtype=str(dq.attrs.out_dtype))
            return self.hoisted[call]
        if not is_op(call, "relax.concat"):
            return new
        fields = self._producer(call.args[0])
        if not isinstance(fields, relax.Tuple) or not fields.fields:
            return new
        dqs = [self._producer(f) for f in fields.fields]
        if not all(is_op(d, "relax.dequantize") for d in dqs):
            return new
        params = [qparams_of(d, dtype_of(d.args[0])) for d in dqs]
        if any(p is None or not p.per_tensor for p in params):
            return new
        first = params[0]
        if any((p.s, p.zp, p.dtype) != (first.s, first.zp, first.dtype) for p in params[1:]):
            return new
        ints = [self.visit_expr(d.args[0]) for d in dqs]
        joined = self.builder_.emit(relax.op.concat(ints, axis=int(call.attrs.axis)))
        dq = dqs[0]
        return relax.op.dequantize(joined, dq.args[1], dq.args[2], axis=int(dq.attrs.axis),
                                   out_dtype=str(dq.attrs.out_dtype))


def HoistDequantize():  # noqa: N802 - TVM pass naming
    """The pass: shared dequantizes move from concat inputs to its output."""

    return function_pass("HoistDequantize",
                         lambda mod, func: DequantizeHoister(mod).lower_function(func))
