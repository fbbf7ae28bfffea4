"""Signed 4-bit weights: how an ONNX INT4 initializer enters the integer compiler.

An INT4 weight (``DequantizeLinear(INT4 initializer, scale, INT4 zero point 0)``) holds
the integers -8..7. The compiler computes with them exactly as with int8 weights (the
same integer convolution, `compiler.reference` unchanged): `as_int8` gives the int8
array every pass and the reference read. What int4 changes is storage: a convolution the
kernel library runs keeps its weights packed two per byte in flash
(`compiler.kernels.packing_s4`). To find those convolutions after lowering, the frontend
records a `weight_digest` of each INT4 weight's int8 values (`ImportedModel.int4_weights`);
the offload pass looks a convolution's weight constant up by the same digest.
"""

from __future__ import annotations

import hashlib

import numpy as np
import onnx
from onnx import TensorProto

INT4_MIN, INT4_MAX = -8, 7
"""The range of a signed 4-bit value."""

FOUR_BIT_TYPES = {TensorProto.INT4: "INT4", TensorProto.UINT4: "UINT4"}
"""ONNX element types of 4-bit tensors."""


def is_four_bit(array: np.ndarray) -> bool:
    """The array is of a 4-bit NumPy type (ml_dtypes ``int4`` / ``uint4``, what
    ``onnx.numpy_helper.to_array`` returns for an INT4 / UINT4 tensor)."""
    return array.dtype.name in ("int4", "uint4")


def as_int8(array: np.ndarray) -> np.ndarray:
    """An ``int4`` array as int8 (``uint4`` as uint8); any other array unchanged."""
    if array.dtype.name == "int4":
        return array.astype(np.int8)
    if array.dtype.name == "uint4":
        return array.astype(np.uint8)
    return array


def four_bit_initializers(model: onnx.ModelProto) -> list[str]:
    """Names of the INT4 / UINT4 initializers of `model` (its 4-bit weights)."""
    return [t.name for t in model.graph.initializer if t.data_type in FOUR_BIT_TYPES]


def int4_weight_digests(model: onnx.ModelProto, values: dict[str, np.ndarray]) -> frozenset:
    """`weight_digest` of each INT4 initializer of `model` that a ``DequantizeLinear``
    dequantizes (its weights; zero points aside), from its int8 `values`."""
    dequantized = {n.input[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    return frozenset(weight_digest(values[t.name]) for t in model.graph.initializer
                     if t.data_type == TensorProto.INT4 and t.name in dequantized)


def weight_digest(weights: np.ndarray) -> str:
    """A digest of an int8 weight array's shape and values (the int4 weight's identity)."""
    w = np.ascontiguousarray(weights, dtype=np.int8)
    h = hashlib.sha256(repr(w.shape).encode())
    h.update(w.tobytes())
    return h.hexdigest()


__all__ = ["FOUR_BIT_TYPES", "INT4_MAX", "INT4_MIN", "as_int8", "four_bit_initializers",
           "int4_weight_digests", "is_four_bit", "weight_digest"]
