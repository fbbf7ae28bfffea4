"""The values the NumPy reference interpreter passes between ONNX nodes.

* a NumPy array: a compile-time constant (initializer or folded subgraph);
* `QTensor`: an integer activation, the output of a QuantizeLinear (or a graph input);
* `Dequant`: ``DequantizeLinear(q)``, kept symbolic as the integers plus their scale;
* `FloatOp`: a float op over such values, kept symbolic until the QuantizeLinear
  that closes the group decides how to compute it in integers;
* `GraphInput`: a float graph input, usable only by its QuantizeLinear.

uint8 is canonicalized to int8 on the way in (``q - 128`` with ``zero_point - 128``,
the same real values), so every integer activation is int8.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import onnx


@dataclass(frozen=True, eq=False)
class GraphInput:
    """A float graph input; its QuantizeLinear is the model boundary."""

    name: str
    shape: tuple[int, ...]


@dataclass(frozen=True, eq=False)
class QTensor:
    """An int8 activation (canonical: uint8 tensors are stored as ``q - 128``).

    Attributes:
        q: the int8 values.
        offset: 128 when the ONNX tensor is uint8 (integer Clip bounds move by it), else 0.
    """

    q: np.ndarray
    offset: int = 0


@dataclass(frozen=True, eq=False)
class Dequant:
    """``DequantizeLinear``: real value = ``scale · (q - zero_point)``, kept as integers.

    Attributes:
        q: the integers (canonical int8 for 8-bit tensors, int32 for biases).
        scale: float32 scale(s).
        zero_point: int64 zero point(s), canonical.
        axis: the quantization axis when per-axis.
        const: ``q`` is a compile-time constant (a weight or bias).
        source: the `QTensor` dequantized (None for constants): element-wise tables
            require all leaves to read the same one.
    """

    q: np.ndarray
    scale: np.ndarray
    zero_point: np.ndarray
    axis: int
    const: bool
    source: QTensor | None = None

    @property
    def per_tensor(self) -> bool:
        """True when scale and zero point are single values."""
        return self.scale.size == 1 and self.zero_point.size == 1

    @property
    def s(self) -> float:
        """The per-tensor scale as a Python float (exactly the float32 value)."""
        return float(self.scale.reshape(-1)[0])

    @property
    def zp(self) -> int:
        """The per-tensor zero point."""
        return int(self.zero_point.reshape(-1)[0])

    def centered(self) -> np.ndarray:
        """``q - zero_point`` in int64 (per-tensor)."""
        return self.q.astype(np.int64) - self.zp

    def with_q(self, q: np.ndarray) -> Dequant:
        """The same quantization over other integers (after a data-movement op)."""
        return Dequant(q, self.scale, self.zero_point, self.axis, self.const, self.source)


@dataclass(frozen=True, eq=False)
class FloatOp:
    """A float ONNX op whose inputs are values of this module; evaluated lazily."""

    node: onnx.NodeProto
    inputs: tuple
    attrs: dict = field(default_factory=dict)
    out_shape: tuple[int, ...] | None = None

    @property
    def op_type(self) -> str:
        """The ONNX op type."""
        return self.node.op_type

    def describe(self) -> str:
        """``OpType (node 'name')`` for error messages."""
        return f"{self.node.op_type} (node {self.node.name or '<unnamed>'!r})"


@dataclass(frozen=True)
class OutQuant:
    """The QuantizeLinear closing a group: per-tensor scale and canonical int8 zero point."""

    scale: float
    zero_point: int
    qmin: int = -128
    qmax: int = 127


def is_op(value, *op_types: str) -> bool:
    """True when ``value`` is a `FloatOp` of one of ``op_types``."""
    return isinstance(value, FloatOp) and value.op_type in op_types
