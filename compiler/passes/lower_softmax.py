"""LowerQuantizedSoftmax: ``quantize(softmax(dq(x_q)))`` → one integer-only softmax kernel.

The group becomes a ``call_tir`` of the statement-level TIR kernel of
`compiler.passes.softmax_kernel` (TFLite Micro's fixed-point softmax, requantized once
to the output grid), tagged (`resize_kernels.KERNEL_ATTR`) ``{"op": "softmax", ...}``
with its `SoftmaxParams`, so `compiler.passes.offload_kernels` can call the C library's
``qanas_softmax_s8`` with the same integers instead.

The frontend refuses an int8 softmax over another axis than the last, or with an output
scale of 1 or more (`compiler.frontend.validate`); such a group reaching this pass stays
float and is named by `compiler.passes.lower_to_integer`.
"""

from __future__ import annotations

import json

import tvm
from tvm import relax

from compiler.passes._common import QParams, QuantRewriter, is_op, kernel_rewrite_pass, shape_of
from compiler.passes.resize_kernels import KERNEL_ATTR
from compiler.passes.softmax_kernel import SoftmaxParams, softmax_primfunc

OPAQUE_PATTERN = 8
"""TVM's ``OpPatternKind.kOpaque``: FuseOps leaves the kernel alone."""


class SoftmaxRewriter(QuantRewriter):
    """Rewrites a quantized softmax over the last axis (per-tensor int8) into its kernel."""

    def rewrite(self, call: relax.Call, out: QParams) -> relax.Expr | None:
        """See the module docstring."""
        node = self.producer(call.args[0])
        if not is_op(node, "relax.nn.softmax"):
            return None
        src = self.dequantized(node.args[0])
        if (src is None or isinstance(src[0], tvm.ir.GenericConst) or not src[1].per_tensor
                or src[1].dtype != "int8"):
            return None
        x_q, xp = src
        shape = shape_of(node)
        if int(node.attrs.axis) % len(shape) != len(shape) - 1:
            return None
        lo, hi = out.qrange()
        params = SoftmaxParams.from_scales(shape, xp.s, out.s, out.zp, lo, hi)
        if params is None:
            return None
        tag = json.dumps({"op": "softmax", **params.to_dict()}, sort_keys=True)
        func = softmax_primfunc(shape, params).with_attr(KERNEL_ATTR, tag)
        # Opaque to fusion (and to TVM's pattern analysis, which needs block-structured TIR).
        func = func.with_attr("op_pattern", OPAQUE_PATTERN)
        gv = self.builder_.add_func(func, "softmax_int8")
        return self.emit(relax.call_tir(gv, [x_q], relax.TensorType(shape, "int8")))


def LowerQuantizedSoftmax():  # noqa: N802 - TVM pass naming
    """The pass: every quantized softmax becomes the integer softmax kernel."""
    return kernel_rewrite_pass("LowerQuantizedSoftmax", SoftmaxRewriter)
