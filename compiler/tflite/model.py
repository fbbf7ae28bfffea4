"""The integer graph the TFLite writer serializes: tensors, constant buffers and builtin ops.

A small in-memory form between the QDQ ONNX walk (`compiler.tflite.graph`) and the
flatbuffer (`compiler.tflite.writer`): every tensor is int8, int32 or float32 with its
TFLite shape (NHWC for 4-D activations) and quantization; every operator names a TFLite
builtin (``"CONV_2D"``) with its options as a schema object-API ``...OptionsT``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Quant:
    """TFLite quantization: ``real = scale[c] · (q - zero_point[c])`` along ``axis``."""

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int = 0

    @classmethod
    def per_tensor(cls, scale: float, zero_point: int) -> Quant:
        """One scale and zero point for the whole tensor."""
        return cls((float(scale),), (int(zero_point),))

    @property
    def s(self) -> float:
        """The per-tensor scale."""
        return self.scale[0]

    @property
    def zp(self) -> int:
        """The per-tensor zero point."""
        return self.zero_point[0]


@dataclass
class Tensor:
    """One TFLite tensor; ``data`` is set for constants (weights, biases, shapes)."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    quant: Quant | None = None
    data: np.ndarray | None = None


@dataclass
class Operator:
    """One builtin operator: ``opcode`` is a `BuiltinOperator` name, ``options`` an OptionsT."""

    opcode: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: object | None = None


@dataclass
class Graph:
    """Tensors and operators of one subgraph, in execution order."""

    tensors: list[Tensor] = field(default_factory=list)
    operators: list[Operator] = field(default_factory=list)
    inputs: list[int] = field(default_factory=list)
    outputs: list[int] = field(default_factory=list)
    _names: set[str] = field(default_factory=set, repr=False)
    int4_weights: frozenset = frozenset()
    """`compiler.int4.weight_digest` of the source's INT4 weights (written as INT4 filters)."""

    def _unique(self, name: str) -> str:
        unique, k = name, 1
        while unique in self._names:
            unique, k = f"{name}_{k}", k + 1
        self._names.add(unique)
        return unique

    def rename(self, index: int, name: str) -> None:
        """Gives tensor ``index`` the name ``name`` (made unique), e.g. an ONNX output name."""
        self._names.discard(self.tensors[index].name)
        self.tensors[index].name = self._unique(name)

    def tensor(self, name: str, shape, dtype: str = "int8", quant: Quant | None = None,
               data: np.ndarray | None = None) -> int:
        """Adds a tensor and returns its index; names are made unique."""
        if data is not None:  # int4 values are held as int8 and packed by the writer
            data = np.array(data, dtype=np.int8 if dtype == "int4" else np.dtype(dtype),
                            order="C")
            if tuple(data.shape) != tuple(shape):
                raise AssertionError(f"constant {name}: data {data.shape} != shape {shape}")
        self.tensors.append(Tensor(self._unique(name), tuple(int(d) for d in shape), dtype, quant, data))
        return len(self.tensors) - 1

    def const(self, name: str, data: np.ndarray, dtype: str,
              quant: Quant | None = None) -> int:
        """Adds a constant tensor holding ``data`` (cast to ``dtype``)."""
        data = np.asarray(data)
        return self.tensor(name, data.shape, dtype, quant, data)

    def op(self, opcode: str, inputs, outputs, options=None) -> None:
        """Appends an operator (inputs may contain -1 for an omitted optional input)."""
        self.operators.append(Operator(opcode, tuple(inputs), tuple(outputs), options))

    def op_counts(self) -> dict[str, int]:
        """Operator count by builtin name, in first-use order."""
        counts: dict[str, int] = {}
        for o in self.operators:
            counts[o.opcode] = counts.get(o.opcode, 0) + 1
        return counts


# ---- values of the ONNX walk (`compiler.tflite.graph`) -------------------------------------
@dataclass(frozen=True, eq=False)
class QAct:
    """The int8 output of a QuantizeLinear: TFLite tensor ``tensor``.

    Attributes:
        tensor: index of the TFLite tensor.
        shape: the ONNX shape (NCHW for 4-D tensors; the TFLite tensor is NHWC).
        scale: the tensor's scale.
        zero_point: its canonical int8 zero point.
        offset: 128 when the ONNX tensor is uint8 (stored as ``q - 128``), else 0.
    """

    tensor: int
    shape: tuple[int, ...]
    scale: float
    zero_point: int
    offset: int = 0


@dataclass(frozen=True, eq=False)
class Act:
    """``DequantizeLinear`` of an int8 activation: TFLite tensor ``tensor`` and its quantization."""

    tensor: int
    shape: tuple[int, ...]
    scale: float
    zero_point: int

    @property
    def s(self) -> float:
        """The per-tensor scale."""
        return self.scale

    @property
    def zp(self) -> int:
        """The canonical int8 zero point."""
        return self.zero_point

    @property
    def quant(self) -> Quant:
        """The TFLite quantization of the tensor."""
        return Quant.per_tensor(self.scale, self.zero_point)


def nhwc(shape) -> tuple[int, ...]:
    """The TFLite shape of an ONNX shape: NCHW → NHWC for 4-D, unchanged otherwise."""
    shape = tuple(int(d) for d in shape)
    return (shape[0], shape[2], shape[3], shape[1]) if len(shape) == 4 else shape


def tflite_axis(axis: int, rank: int) -> int:
    """The TFLite axis of an ONNX axis (NCHW → NHWC for rank 4)."""
    axis = axis + rank if axis < 0 else axis
    return (0, 3, 1, 2)[axis] if rank == 4 else axis
