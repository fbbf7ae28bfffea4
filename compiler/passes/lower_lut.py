"""LowerQuantizedUnaryToLUT: any element-wise float function of one int8 tensor → a 256-entry table.

``quantize(f(dq(x_q)))``, where ``f`` is a DAG of element-wise ops (sigmoid,
hard-sigmoid, hard-swish, ReLU, clip, tanh, exp, arithmetic with scalar constants)
over a *single* dequantized int8 tensor, takes only 256 possible inputs. The table
``T[i] = quantize(f(dequantize(i - 128)))`` is computed at compile time in float32
(like the float reference), and the kernel is ``take(T, x_q + 128)``.
"""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax

from compiler import int8
from compiler.passes._common import (
    QParams,
    QuantRewriter,
    const_value,
    is_op,
    prim_number,
    rewrite_pass,
)

_F32 = np.float32


def _sigmoid(x):
    return (_F32(1) / (_F32(1) + np.exp(-x))).astype(_F32)


_UNARY = {
    "relax.nn.relu": lambda x: np.maximum(x, _F32(0)),
    "relax.sigmoid": _sigmoid,
    "relax.tanh": np.tanh,
    "relax.exp": np.exp,
    "relax.negative": np.negative,
}
_BINARY = {
    "relax.add": np.add,
    "relax.subtract": np.subtract,
    "relax.multiply": np.multiply,
    "relax.divide": np.divide,
    "relax.maximum": np.maximum,
    "relax.minimum": np.minimum,
}


class _NoMatch(Exception):
    pass


class LUTRewriter(QuantRewriter):
    """Rewrites quantize(element-wise f(dq(x))) into a table lookup."""

    def evaluate(self, expr: relax.Expr, leaf: dict) -> np.ndarray:
        """``f`` evaluated on all 256 int8 inputs; records the one int8 source in ``leaf``."""
        c = const_value(expr)
        if c is not None:
            if c.size != 1 or not np.issubdtype(c.dtype, np.floating):
                raise _NoMatch
            return _F32(c.reshape(-1)[0])
        node = self.producer(expr)
        if is_op(node, "relax.dequantize"):
            src = self.dequantized(expr)
            if src is None or isinstance(src[0], tvm.ir.GenericConst):
                raise _NoMatch
            if not src[1].per_tensor or src[1].dtype != "int8":
                raise _NoMatch
            if not leaf.setdefault("var", node.args[0]).same_as(node.args[0]):
                raise _NoMatch
            leaf["q"], leaf["qp"] = src
            return int8.dequantize(np.arange(-128, 128), src[1].s, src[1].zp)
        if not isinstance(node, relax.Call) or not isinstance(node.op, tvm.ir.Op):
            raise _NoMatch
        name = node.op.name
        with np.errstate(all="ignore"):
            if name in _UNARY:
                return _UNARY[name](self.evaluate(node.args[0], leaf)).astype(_F32)
            if name in _BINARY:
                a, b = (self.evaluate(arg, leaf) for arg in node.args)
                return _BINARY[name](a, b).astype(_F32)
            if name == "relax.clip":
                x = self.evaluate(node.args[0], leaf)
                lo, hi = _F32(prim_number(node.args[1])), _F32(prim_number(node.args[2]))
                return np.minimum(np.maximum(x, lo), hi).astype(_F32)
        raise _NoMatch

    def rewrite(self, call: relax.Call, out: QParams) -> relax.Expr | None:
        """See the module docstring."""
        leaf: dict = {}
        try:
            values = self.evaluate(call.args[0], leaf)
        except _NoMatch:
            return None
        if "q" not in leaf:
            return None
        lo, hi = out.qrange()
        table = int8.quantize(np.broadcast_to(values, (256,)), out.s, out.zp, lo, hi)
        index = self.emit(relax.op.add(self.to_int(leaf["q"], "int32"),
                                       relax.const(np.int32(128), "int32")))
        return self.emit(relax.op.take(relax.const(table.astype(np.int8), "int8"), index,
                                       axis=0))


def LowerQuantizedUnaryToLUT():  # noqa: N802 - TVM pass naming
    """The pass: element-wise activations between dequantize and quantize become tables."""
    return rewrite_pass("LowerQuantizedUnaryToLUT", LUTRewriter)
