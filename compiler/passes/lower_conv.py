"""LowerQuantizedConv2d: ``quantize(act(conv2d(dq(x), dq(w)) + dq(b)))`` → int8 conv.

Integer form (per output channel ``c``)::

    acc[c] = conv2d(pad(x_q, zp_x), w_q, out_dtype=int32) + (b_q[c] - zp_x · Σ w_q[c])
    y_q    = requantize(acc, s_x · s_w[c] / s_y, zp_y, qmin', qmax')

The border reads ``zp_x`` (the quantized zero), so the zero-point correction is one
constant per channel and the conv stays int8 × int8 → int32. When ``zp_x != 0`` the
conv is one ``call_tir`` of `_common.padded_conv2d`: the padding is a stage of the
conv's own kernel, read at the borders, never a ``pad`` kernel or a padded copy
(`QuantRewriter.conv2d_int32`); with ``zp_x = 0`` it is ``R.nn.conv2d`` with padding. A float bias is quantized to int32 with scale ``s_x · s_w``.
ReLU / clip between the bias add and the quantize are folded into ``[qmin', qmax']``.
Weights must be symmetric (zero point 0), as Brevitas and onnxruntime export them.
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
    kernel_rewrite_pass,
)


class ConvRewriter(QuantRewriter):
    """Rewrites quantized conv2d (incl. grouped/depthwise, strided, dilated, padded)."""

    def bias_of(self, node: relax.Expr):
        """Splits ``add(conv, bias)`` → ``(conv, bias)``; otherwise ``(node, None)``."""
        if is_op(node, "relax.add"):
            for conv_side, bias_side in ((0, 1), (1, 0)):
                if is_op(self.producer(node.args[conv_side]), "relax.nn.conv2d"):
                    return self.producer(node.args[conv_side]), node.args[bias_side]
        return node, None

    def int_bias(self, bias: relax.Expr | None, acc_scale: np.ndarray, channels: int):
        """The bias as int32 per channel at scale ``acc_scale`` (None if not constant)."""
        if bias is None:
            return np.zeros(channels, np.int64)
        dq = self.dequantized(bias)
        if dq is not None and isinstance(dq[0], tvm.ir.GenericConst):
            q, qp = const_value(dq[0]).astype(np.int64).reshape(-1), dq[1]
            if np.allclose(qp.scale.reshape(-1), acc_scale, rtol=1e-6) and not qp.zero_point.any():
                return np.broadcast_to(q, (channels,)).copy()
            real = int8.dequantize(q, qp.scale.reshape(-1), qp.zero_point.reshape(-1))
        else:
            real = const_value(self.producer(bias))
            if real is None:
                return None
            real = real.reshape(-1)
        return np.rint(np.broadcast_to(real, (channels,)) / acc_scale).astype(np.int64)

    def rewrite(self, call: relax.Call, out: QParams) -> relax.Expr | None:
        """See the module docstring."""
        inner, qmin, qmax = self.activation_bounds(call.args[0], out)
        conv, bias = self.bias_of(self.producer(inner))
        if not is_op(conv, "relax.nn.conv2d"):
            return None
        x, w = self.dequantized(conv.args[0]), self.dequantized(conv.args[1])
        if (x is None or w is None or not isinstance(w[0], tvm.ir.GenericConst)
                or not x[1].per_tensor):
            return None
        (x_q, xp), (w_c, wp) = x, w
        w_q = const_value(w_c)
        if wp.zero_point.any() or xp.dtype != "int8" or w_q.dtype != np.int8:
            return None
        attrs = conv.attrs
        if str(attrs.data_layout) != "NCHW" or str(attrs.kernel_layout) != "OIHW":
            return None
        channels = w_q.shape[0]
        w_scale = np.broadcast_to(wp.scale.reshape(-1), (channels,)).astype(np.float64)
        acc_scale = (np.float64(xp.s) * w_scale)
        b_q = self.int_bias(bias, acc_scale.astype(np.float32), channels)
        if b_q is None:
            return None
        acc = self.conv2d_int32(x_q, w_c, attrs.strides, attrs.padding, attrs.dilation,
                                attrs.groups, pad_value=xp.zp)
        bshape = (1, channels, 1, 1)
        offset = b_q - xp.zp * w_q.astype(np.int64).reshape(channels, -1).sum(axis=1)
        if offset.any():
            acc = self.emit(relax.op.add(acc, relax.const(
                offset.astype(np.int32).reshape(bshape), "int32")))
        real = acc_scale / np.float64(out.s)
        if np.all(real == real[0]):
            real = real[0]  # per-tensor weights: scalar multiplier and shift
        return self.requantize(acc, real, out.zp, qmin, qmax, bshape)


def LowerQuantizedConv2d():  # noqa: N802 - TVM pass naming
    """The pass: every quantized conv2d group becomes integer-only Relax."""
    return kernel_rewrite_pass("LowerQuantizedConv2d", ConvRewriter)
