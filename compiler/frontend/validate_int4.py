"""Checks of 4-bit tensors: signed int4 Conv weights are compiled, the rest is refused.

qanas computes int4 weights as the integers they are (-8..7, `compiler.int4`), with int8
activations. What it accepts (docs/int4-weights.md):

* ``DequantizeLinear`` of a constant INT4 tensor whose output is read only as the weight
  (input 1) of ``Conv`` nodes, with zero point 0 (or none): symmetric, per-tensor or
  per output channel (the int8 weight checks of `compiler.frontend.validate` apply too).

What it refuses, naming the tensor and the fix:

* int4 / uint4 activations (a ``QuantizeLinear`` to a 4-bit type, a ``DequantizeLinear``
  of a computed 4-bit tensor): the kernels take int8 activations;
* UINT4 constants: unsigned weights are asymmetric by construction;
* INT4 constants read by anything but a Conv weight (Gemm, MatMul, a bias ...).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto

from compiler.errors import UnsupportedOpError
from compiler.frontend.facts import ModelFacts, node_name
from compiler.int4 import FOUR_BIT_TYPES

_ACT_FIX = ("qanas compiles int8 (or uint8) activations only; quantize activations to 8 "
            "bits (int4 is for Conv weights: docs/int4-weights.md)")


def refuse_four_bit(node: onnx.NodeProto, facts: ModelFacts) -> None:
    """Refuses a 4-bit activation or a UINT4 constant at a Q/DQ `node`.

    Raises:
        UnsupportedOpError: naming the node, the tensor, its type and the fix.
    """
    where = node_name(node)
    if node.op_type == "QuantizeLinear":
        elem = facts.dtypes.get(node.output[0])
        if elem in FOUR_BIT_TYPES:
            raise UnsupportedOpError(
                f"{where} quantizes the activation {node.input[0]!r} to "
                f"{FOUR_BIT_TYPES[elem]}; {_ACT_FIX}")
        return
    tensor = node.input[0]
    elem = facts.dtypes.get(tensor)
    if elem not in FOUR_BIT_TYPES:
        return
    if tensor not in facts.consts:
        raise UnsupportedOpError(
            f"{where} dequantizes the {FOUR_BIT_TYPES[elem]} activation {tensor!r}; {_ACT_FIX}")
    if elem == TensorProto.UINT4:
        raise UnsupportedOpError(
            f"{where} dequantizes the UINT4 constant {tensor!r}; qanas takes signed INT4 "
            "weights with zero point 0 (symmetric, [-8, 7] or [-7, 7]). Export the weights "
            "as INT4 (Brevitas Int4WeightPerChannelFloat, onnxruntime QuantType.QInt4)")


def check_int4_weight(node: onnx.NodeProto, facts: ModelFacts) -> None:
    """Checks a ``DequantizeLinear`` of a constant INT4 tensor: read only as Conv weights,
    zero point 0.

    Raises:
        UnsupportedOpError: another reader (Gemm, MatMul, an element-wise op ...) or a
            non-zero zero point, naming the node and the fix.
    """
    tensor = node.input[0]
    where = f"{node_name(node)} (INT4 constant {tensor!r})"
    for reader, index in facts.consumers.get(node.output[0], []):
        if reader.op_type != "Conv" or index != 1:
            raise UnsupportedOpError(
                f"{where} is read by {node_name(reader)} as input {index}; qanas compiles "
                "INT4 only as Conv weights. Quantize this tensor to int8 (INT8 weights for "
                "Gemm/MatMul, int32 biases)")
    zp = facts.zero_point(node)
    if zp is not None and np.asarray(zp).any():
        raise UnsupportedOpError(
            f"{where} has zero point(s) {np.unique(np.asarray(zp)).tolist()[:4]}; INT4 weights "
            "must be symmetric (zero point 0 or none). Quantize weights symmetrically")


__all__ = ["check_int4_weight", "refuse_four_bit"]
