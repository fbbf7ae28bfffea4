"""LowerQuantizedDataMovement: requantize, reshape / transpose / max-pool on int8.

These ops only move or select values, so ``quantize(op(dq(x_q)))`` equals
``op(x_q)`` rescaled to the output's quantization (usually the same one, making
the rescale a no-op). Max-pool is included because quantization is monotonic.
Max-pool padding uses the int8 minimum, like the float op's −inf.
"""

from __future__ import annotations

from tvm import relax

from compiler.passes._common import QParams, QuantRewriter, is_op, rewrite_pass


class DataMovementRewriter(QuantRewriter):
    """Rewrites reshape, permute_dims and max_pool2d."""

    PRODUCERS = frozenset({"relax.dequantize", "relax.reshape", "relax.permute_dims",
                           "relax.nn.max_pool2d"})

    def moved(self, node: relax.Call, x_q: relax.Expr) -> relax.Expr | None:
        """``node`` applied to the int8 tensor ``x_q``, or None for another op."""
        if is_op(node, "relax.dequantize"):  # a plain requantization: dq → q
            return x_q
        if is_op(node, "relax.reshape"):
            return relax.op.reshape(x_q, node.args[1])
        if is_op(node, "relax.permute_dims"):
            axes = node.attrs.axes
            return relax.op.permute_dims(x_q, None if axes is None else [int(a) for a in axes])
        if is_op(node, "relax.nn.max_pool2d"):
            a = node.attrs
            if bool(a.ceil_mode):
                return None
            return relax.op.nn.max_pool2d(
                x_q, [int(v) for v in a.pool_size], [int(v) for v in a.strides],
                [int(v) for v in a.padding], [int(v) for v in a.dilation],
                layout=str(a.layout), out_layout=str(a.out_layout))
        return None

    def rewrite(self, call: relax.Call, out: QParams) -> relax.Expr | None:
        """See the module docstring."""
        node = self.producer(call.args[0])
        if not isinstance(node, relax.Call) or not node.args:
            return None
        src = self.dequantized(call.args[0] if is_op(node, "relax.dequantize") else node.args[0])
        if src is None or not src[1].per_tensor or src[1].dtype != "int8":
            return None
        moved = self.moved(node, src[0])
        if moved is None:
            return None
        return self.rescale(moved if moved.same_as(src[0]) else self.emit(moved), src[1], out)


def LowerQuantizedDataMovement():  # noqa: N802 - TVM pass naming
    """The pass: int8 reshape/transpose/max-pool."""
    return rewrite_pass("LowerQuantizedDataMovement", DataMovementRewriter)
