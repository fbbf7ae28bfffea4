"""`export_tflite`: a QDQ ONNX model → an int8 TFLite flatbuffer on disk, described."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from compiler.tflite.graph import build_graph
from compiler.tflite.model import Graph
from compiler.tflite.writer import serialize, write


@dataclass(frozen=True)
class TFLiteTensor:
    """One int8 input or output of the exported model (NHWC shape for 4-D)."""

    name: str
    shape: tuple[int, ...]
    scale: float
    zero_point: int


@dataclass(frozen=True)
class TFLiteExport:
    """What `export_tflite` wrote.

    Attributes:
        path: the ``.tflite`` file.
        op_counts: operator count by TFLite builtin name (``{"CONV_2D": 12, ...}``).
        inputs: the int8 inputs, in order (names are the ONNX graph input names).
        outputs: the int8 outputs, in order (names are the ONNX graph output names).
        bytes: size of the flatbuffer.
    """

    path: Path
    op_counts: dict[str, int]
    inputs: tuple[TFLiteTensor, ...]
    outputs: tuple[TFLiteTensor, ...]
    bytes: int

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        def tensors(ts):
            return [{"name": t.name, "shape": list(t.shape), "scale": t.scale,
                     "zero_point": t.zero_point} for t in ts]

        return {"path": str(self.path), "op_counts": dict(self.op_counts),
                "inputs": tensors(self.inputs), "outputs": tensors(self.outputs),
                "bytes": self.bytes}


def _io(graph: Graph, indices) -> tuple[TFLiteTensor, ...]:
    out = []
    for i in indices:
        t = graph.tensors[i]
        out.append(TFLiteTensor(t.name, t.shape, t.quant.s, t.quant.zp))
    return tuple(out)


def export_tflite(model, out_path: str | os.PathLike) -> TFLiteExport:
    """Writes the int8 TFLite flatbuffer of a QDQ ONNX model.

    The model boundary is the compiled C model's (`compiler.reference.boundary`): int8
    inputs and outputs with the same scales and zero points (uint8 as int8 with
    zero point − 128), NHWC instead of NCHW. Weights are int8 per output channel
    (zero point 0), biases int32 at ``s_x · s_w[c]``, activations int8 per tensor.

    Args:
        model: a QDQ ONNX path or ``onnx.ModelProto`` (what `compiler.compile_model`
            takes; Brevitas QCDQ from `qanas.quant.export.export_qdq`).
        out_path: the ``.tflite`` file to write (atomically; folders are created).

    Returns:
        A `TFLiteExport` with the path, op counts, inputs/outputs and size.

    Raises:
        UnsupportedOpError: an ONNX op or pattern with no TFLite int8 equivalent; the
            message names the op and node and what to change. Nothing is written.

    Example:
        >>> info = export_tflite("subnet.onnx", "out/subnet.tflite")  # doctest: +SKIP
        >>> info.op_counts["CONV_2D"]  # doctest: +SKIP
    """
    graph = build_graph(model)
    data = serialize(graph)
    path = write(data, out_path)
    return TFLiteExport(path, graph.op_counts(), _io(graph, graph.inputs),
                        _io(graph, graph.outputs), len(data))
