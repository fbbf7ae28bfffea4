"""LowerQuantizedConcat: ``quantize(concat(dq(x_1), ..., dq(x_k)))`` → int8 concat.

Each input is rescaled to the output's scale and zero point (a no-op when they
already match, as with Brevitas' shared quantizers), then concatenated as int8.
"""

from __future__ import annotations

from tvm import relax

from compiler.passes._common import QParams, QuantRewriter, is_op, rewrite_pass


class ConcatRewriter(QuantRewriter):
    """Rewrites quantized concatenation along any axis."""

    def rewrite(self, call: relax.Call, out: QParams) -> relax.Expr | None:
        """See the module docstring."""
        node = self.producer(call.args[0])
        if not is_op(node, "relax.concat"):
            return None
        fields = self.producer(node.args[0])
        if not isinstance(fields, relax.Tuple):
            return None
        parts = [self.dequantized(f) for f in fields.fields]
        if any(p is None or not p[1].per_tensor for p in parts):
            return None
        ints = [self.rescale(q, qp, out) for q, qp in parts]
        return self.emit(relax.op.concat(ints, axis=int(node.attrs.axis)))


def LowerQuantizedConcat():  # noqa: N802 - TVM pass naming
    """The pass: quantized Concat becomes integer-only Relax."""
    return rewrite_pass("LowerQuantizedConcat", ConcatRewriter)
