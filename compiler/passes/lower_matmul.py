"""LowerQuantizedMatmul: ``quantize(act(matmul(dq(x), dq(W)) + dq(b)))`` → int8 matmul.

ONNX Gemm/MatMul import as ``R.matmul(x, W)`` with ``W`` of shape ``[K, N]``
(per-channel scales along axis 1). Integer form, per output column ``n``::

    acc[n] = matmul(x_q, W_q, out_dtype=int32) + (b_q[n] - zp_x · Σ_k W_q[k, n])
    y_q    = requantize(acc, s_x · s_W[n] / s_y, zp_y, qmin', qmax')

A MatMul of two int8 activations (attention's ``Q·Kᵀ`` and ``softmax·V``, batched over
the heads) has no weight to fold the zero points into; both operands are centred::

    acc = matmul(a_q - zp_a, b_q - zp_b, out_dtype=int32)
    y_q = requantize(acc, s_a · s_b / s_y, zp_y, qmin', qmax')
"""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax

from compiler.passes._common import QParams, QuantRewriter, const_value, is_op, rewrite_pass
from compiler.passes.lower_conv import ConvRewriter


class MatmulRewriter(QuantRewriter):
    """Rewrites quantized matmul / dense layers with a constant int8 right operand."""

    bias_scale = ConvRewriter.int_bias

    def rewrite(self, call: relax.Call, out: QParams) -> relax.Expr | None:
        """See the module docstring."""
        inner, qmin, qmax = self.activation_bounds(call.args[0], out)
        node, bias = self.producer(inner), None
        if is_op(node, "relax.add"):
            for mm_side, b_side in ((0, 1), (1, 0)):
                if is_op(self.producer(node.args[mm_side]), "relax.matmul"):
                    node, bias = self.producer(node.args[mm_side]), node.args[b_side]
                    break
        if not is_op(node, "relax.matmul"):
            return None
        x, w = self.dequantized(node.args[0]), self.dequantized(node.args[1])
        if x is None or w is None or not x[1].per_tensor or x[1].dtype != "int8":
            return None
        if not isinstance(w[0], tvm.ir.GenericConst):
            return None if bias is not None else self.activation_product(x, w, out, qmin, qmax)
        (x_q, xp), (w_c, wp) = x, w
        w_q = const_value(w_c)
        if w_q.ndim != 2 or w_q.dtype != np.int8 or wp.zero_point.any():
            return None
        cols = w_q.shape[1]
        acc_scale = np.float64(xp.s) * np.broadcast_to(wp.scale.reshape(-1), (cols,))
        b_q = self.bias_scale(bias, acc_scale.astype(np.float32), cols)
        if b_q is None:
            return None
        acc = self.emit(relax.op.matmul(x_q, w_c, out_dtype="int32"))
        offset = b_q - xp.zp * w_q.astype(np.int64).sum(axis=0)
        if offset.any():
            acc = self.emit(relax.op.add(acc, relax.const(offset.astype(np.int32), "int32")))
        real = acc_scale / np.float64(out.s)
        if np.all(real == real[0]):
            real = real[0]
        return self.requantize(acc, real, out.zp, qmin, qmax, (cols,))

    def activation_product(self, a, b, out: QParams, qmin: int, qmax: int) -> relax.Expr | None:
        """The int8 product of two per-tensor int8 activations (see the module docstring)."""
        (a_q, ap), (b_q, bp) = a, b
        if not bp.per_tensor or bp.dtype != "int8":
            return None
        acc = self.emit(relax.op.matmul(self.to_int(a_q, "int32", ap.zp),
                                        self.to_int(b_q, "int32", bp.zp), out_dtype="int32"))
        real = np.float64(ap.s) * np.float64(bp.s) / np.float64(out.s)
        return self.requantize(acc, real, out.zp, qmin, qmax)


def LowerQuantizedMatmul():  # noqa: N802 - TVM pass naming
    """The pass: every quantized Gemm/MatMul group becomes integer-only Relax."""
    return rewrite_pass("LowerQuantizedMatmul", MatmulRewriter)
