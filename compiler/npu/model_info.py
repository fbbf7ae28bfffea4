"""What a TFLite flatbuffer holds that the deploy glue needs: its operators and its I/O.

Read with the flatbuffer accessors Vela ships (``ethosu.vela.tflite``), so no second
TFLite schema is needed. On a Vela-optimised model the NPU part is one ``CUSTOM``
operator (``ethos-u``); every other operator runs on the CPU through TFLite Micro and
must be registered in the op resolver.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from compiler.errors import InvalidModelError

ETHOSU_CUSTOM_CODE = "ethos-u"


@dataclass(frozen=True)
class TensorInfo:
    """A model input or output: name, shape, element type and int8 quantization."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: float | None
    zero_point: int | None

    @property
    def bytes(self) -> int:
        """Size in bytes (1 per element for int8/uint8, 4 for int32/float32...)."""
        width = {"INT8": 1, "UINT8": 1, "INT16": 2, "INT32": 4, "FLOAT32": 4, "INT64": 8}
        count = 1
        for d in self.shape:
            count *= int(d)
        return count * width.get(self.dtype, 1)

    def to_dict(self) -> dict:
        """JSON-friendly form."""
        return {**asdict(self), "shape": list(self.shape), "bytes": self.bytes}


@dataclass(frozen=True)
class ModelInfo:
    """Operators and I/O of a TFLite model.

    Attributes:
        builtin_ops: builtin operator names (``RESIZE_BILINEAR``...), sorted, no duplicates.
        custom_ops: custom operator codes (``ethos-u`` after Vela).
        operator_count: number of operators in the main subgraph.
        inputs, outputs: the main subgraph's I/O tensors.
    """

    builtin_ops: tuple[str, ...]
    custom_ops: tuple[str, ...]
    operator_count: int
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]

    @property
    def cpu_ops(self) -> tuple[str, ...]:
        """The builtin operators, i.e. those TFLite Micro runs on the CPU after Vela."""
        return self.builtin_ops


def read_model_info(path: str | Path) -> ModelInfo:
    """Reads the operator codes and the main subgraph's I/O of the TFLite file `path`.

    Raises:
        InvalidModelError: the file is not a TFLite flatbuffer.
    """
    from ethosu.vela.tflite.BuiltinOperator import BuiltinOperator
    from ethosu.vela.tflite.Model import Model
    from ethosu.vela.tflite.TensorType import TensorType

    data = Path(path).read_bytes()
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise InvalidModelError(f"{path} is not a TFLite flatbuffer (no 'TFL3' identifier); "
                                "export one with compiler.tflite.export_tflite")
    model = Model.GetRootAsModel(data, 0)
    op_names = {v: k for k, v in vars(BuiltinOperator).items() if not k.startswith("_")}
    type_names = {v: k for k, v in vars(TensorType).items() if not k.startswith("_")}
    if model.SubgraphsLength() < 1:
        raise InvalidModelError(f"{path} has no subgraph")
    graph = model.Subgraphs(0)
    builtin, custom = set(), set()
    for i in range(graph.OperatorsLength()):
        code = model.OperatorCodes(graph.Operators(i).OpcodeIndex())
        number = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if number == BuiltinOperator.CUSTOM:
            custom.add(code.CustomCode().decode())
        else:
            builtin.add(op_names.get(number, f"BUILTIN_{number}"))

    def tensor(index: int) -> TensorInfo:
        t = graph.Tensors(index)
        q = t.Quantization()
        scale = float(q.Scale(0)) if q is not None and q.ScaleLength() else None
        zero = int(q.ZeroPoint(0)) if q is not None and q.ZeroPointLength() else None
        return TensorInfo(t.Name().decode(), tuple(int(d) for d in t.ShapeAsNumpy()),
                          type_names.get(t.Type(), str(t.Type())), scale, zero)

    return ModelInfo(tuple(sorted(builtin)), tuple(sorted(custom)), graph.OperatorsLength(),
                     tuple(tensor(graph.Inputs(i)) for i in range(graph.InputsLength())),
                     tuple(tensor(graph.Outputs(i)) for i in range(graph.OutputsLength())))
