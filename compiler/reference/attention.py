"""Int8 groups of attention: a product of two activations, and softmax.

* ``Q(MatMul(DQ a, DQ b))`` with both operands int8 activations (per tensor): the int64
  product of ``a - zp_a`` and ``b - zp_b`` (an int32 accumulator for K < 2^16),
  requantized once with ``s_a · s_b / s_out``;
* ``Q(Softmax(DQ x))``: TFLite Micro's fixed-point softmax (`compiler.reference.softmax`)
  requantized to the output grid.
"""

from __future__ import annotations

import numpy as np

from compiler.reference.groups import requantize
from compiler.reference.softmax import softmax_int8
from compiler.reference.values import Dequant, OutQuant, is_op


def _activation(value) -> Dequant | None:
    if isinstance(value, Dequant) and not value.const and value.per_tensor:
        return value
    return None


def lower_activation_matmul(value, out: OutQuant) -> np.ndarray | None:
    """``Q(MatMul(DQ a, DQ b))`` of two int8 activations (batched, numpy broadcasting)."""
    if not is_op(value, "MatMul"):
        return None
    a, b = (_activation(v) for v in value.inputs[:2])
    if a is None or b is None:
        return None
    acc = np.matmul(a.centered(), b.centered())
    return requantize(acc, np.float64(a.s) * np.float64(b.s) / np.float64(out.scale), out)


def lower_softmax(value, out: OutQuant) -> np.ndarray | None:
    """``Q(Softmax(DQ x))`` along the op's axis (opset 13: default -1)."""
    if not is_op(value, "Softmax"):
        return None
    x = _activation(value.inputs[0])
    if x is None:
        return None
    return softmax_int8(x.q, x.s, out.scale, out.zero_point, out.qmin, out.qmax,
                        int(value.attrs.get("axis", -1)))


ATTENTION_GROUPS = (lower_activation_matmul, lower_softmax)
"""The attention group kinds, tried after `compiler.reference.groups.GROUPS`."""

__all__ = ["ATTENTION_GROUPS", "lower_activation_matmul", "lower_softmax"]
