"""LowerQuantizedAvgPool: int8 average pooling and global average pooling (``R.mean``).

Window sums are taken in int32 by a depthwise conv with an all-ones int8 kernel
over the input padded with its zero point, then corrected by ``zp · kh · kw`` and
divided by the element count inside the requantize multiplier::

    acc = dwconv(pad(x_q, zp_x), 1) - zp_x · kh · kw
    y_q = requantize(acc, s_x / (s_y · count), zp_y)

The padding is read at the borders inside the pool's own kernel
(`QuantRewriter.conv2d_int32`): no ``pad`` kernel, no padded copy of the input.

``count`` is ``kh · kw`` with ``count_include_pad``, else the number of valid
elements per output position (then multipliers vary per position).
Global average pooling sums over H and W with ``R.sum``.
"""

from __future__ import annotations

import numpy as np
from tvm import relax

from compiler.passes._common import (
    QParams,
    QuantRewriter,
    is_op,
    kernel_rewrite_pass,
    shape_of,
)


def _valid_counts(size: int, k: int, stride: int, before: int, out: int) -> np.ndarray:
    starts = np.arange(out) * stride - before
    return np.minimum(starts + k, size) - np.maximum(starts, 0)


class AvgPoolRewriter(QuantRewriter):
    """Rewrites quantized avg_pool2d and mean over the spatial axes."""

    def avg_pool(self, node, x_q, xp: QParams, out: QParams, qmin, qmax):
        """The int8 avg_pool2d."""
        a = node.attrs
        kh, kw = (int(v) for v in a.pool_size)
        sh, sw = (int(v) for v in a.strides)
        top, left, bottom, right = (int(v) for v in a.padding)
        if bool(a.ceil_mode) or any(int(d) != 1 for d in a.dilation):
            return None
        n, c, h, w = shape_of(x_q)
        ones = relax.const(np.ones((c, 1, kh, kw), np.int8), "int8")
        acc = self.conv2d_int32(x_q, ones, (sh, sw), (top, left, bottom, right), (1, 1), c,
                                pad_value=xp.zp)
        if xp.zp:
            acc = self.emit(relax.op.subtract(acc, relax.const(np.int32(xp.zp * kh * kw),
                                                               "int32")))
        _, _, ho, wo = shape_of(acc)
        if bool(a.count_include_pad):
            return self.requantize(acc, np.float64(xp.s) / (out.s * kh * kw), out.zp, qmin, qmax)
        counts = np.outer(_valid_counts(h, kh, sh, top, ho), _valid_counts(w, kw, sw, left, wo))
        real = np.float64(xp.s) / (np.float64(out.s) * counts)
        if np.all(real == real.flat[0]):
            return self.requantize(acc, real.flat[0], out.zp, qmin, qmax)
        return self.requantize(acc, real.reshape(1, 1, ho, wo), out.zp, qmin, qmax,
                               (1, 1, ho, wo))

    def rewrite(self, call: relax.Call, out: QParams) -> relax.Expr | None:
        """See the module docstring."""
        inner, qmin, qmax = self.activation_bounds(call.args[0], out)
        node = self.producer(inner)
        if not (is_op(node, "relax.nn.avg_pool2d") or is_op(node, "relax.mean")):
            return None
        src = self.dequantized(node.args[0])
        if src is None or not src[1].per_tensor or src[1].dtype != "int8":
            return None
        x_q, xp = src
        if is_op(node, "relax.nn.avg_pool2d"):
            if str(node.attrs.layout) != "NCHW":
                return None
            return self.avg_pool(node, x_q, xp, out, qmin, qmax)
        axes = sorted(int(v) for v in node.attrs.axis) if node.attrs.axis is not None else None
        shape = shape_of(x_q)
        if axes is None or len(shape) != 4 or axes != [2, 3]:
            return None
        acc = self.emit(relax.op.sum(self.to_int(x_q, "int32"), axis=[2, 3],
                                     keepdims=bool(node.attrs.keepdims)))
        count = shape[2] * shape[3]
        if xp.zp:
            acc = self.emit(relax.op.subtract(acc, relax.const(np.int32(xp.zp * count), "int32")))
        return self.requantize(acc, np.float64(xp.s) / (out.s * count), out.zp, qmin, qmax)


def LowerQuantizedAvgPool():  # noqa: N802 - TVM pass naming
    """The pass: quantized average pooling becomes integer-only Relax."""
    return kernel_rewrite_pass("LowerQuantizedAvgPool", AvgPoolRewriter)
