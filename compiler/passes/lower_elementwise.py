"""LowerQuantizedElementwise: int8 Add / Sub / Mul of two quantized tensors.

Add and Sub (``y = s_a (a - zp_a) ± s_b (b - zp_b)``) use one shared shift so the
exact sum is rounded once::

    p   = M_a · (a_q - zp_a) ± M_b · (b_q - zp_b)          (int64)
    y_q = clamp(round_half_even(p / 2^n) + zp_y)          with s_a/s_y ≈ M_a/2^n ...

Mul: ``acc = (a_q - zp_a)(b_q - zp_b)`` in int32, requantized with ``s_a s_b / s_y``.
A following ReLU / clip is folded into the clamp. Broadcasting follows Relax's.
"""

from __future__ import annotations

import numpy as np
from tvm import relax

from compiler import int8
from compiler.passes._common import QParams, QuantRewriter, is_op, rewrite_pass

_OPS = {"relax.add": 1, "relax.subtract": -1, "relax.multiply": 0}


class ElementwiseRewriter(QuantRewriter):
    """Rewrites quantize(add|subtract|multiply(dq(a), dq(b)))."""

    def rewrite(self, call: relax.Call, out: QParams) -> relax.Expr | None:
        """See the module docstring."""
        inner, qmin, qmax = self.activation_bounds(call.args[0], out)
        node = self.producer(inner)
        kind = next((sign for name, sign in _OPS.items() if is_op(node, name)), None)
        if kind is None:
            return None
        a, b = self.dequantized(node.args[0]), self.dequantized(node.args[1])
        if a is None or b is None or not (a[1].per_tensor and b[1].per_tensor):
            return None
        (a_q, ap), (b_q, bp) = a, b
        if kind == 0:
            acc = self.emit(relax.op.multiply(self.to_int(a_q, "int32", ap.zp),
                                              self.to_int(b_q, "int32", bp.zp)))
            return self.requantize(acc, np.float64(ap.s) * bp.s / out.s, out.zp, qmin, qmax)
        (m_a, m_b), n = int8.shared_shift_multipliers([ap.s / out.s, bp.s / out.s])
        ta = self.emit(relax.op.multiply(self.to_int(a_q, "int64", ap.zp),
                                         relax.const(np.int64(m_a), "int64")))
        tb = self.emit(relax.op.multiply(self.to_int(b_q, "int64", bp.zp),
                                         relax.const(np.int64(m_b), "int64")))
        p = self.emit(relax.op.add(ta, tb) if kind > 0 else relax.op.subtract(ta, tb))
        return self.round_shift_clamp(p, np.int64(n), out.zp, qmin, qmax)


def LowerQuantizedElementwise():  # noqa: N802 - TVM pass naming
    """The pass: quantized Add/Sub/Mul become integer-only Relax."""
    return rewrite_pass("LowerQuantizedElementwise", ElementwiseRewriter)
