"""What a frontend hands to the rest of the compiler: a Relax module plus its I/O contract."""

from __future__ import annotations

from dataclasses import dataclass, replace

import tvm


@dataclass(frozen=True)
class TensorInfo:
    """One graph input or output.

    For a fully quantized model the compiled graph takes and returns int8 tensors
    (like TFLite's int8 ``inference_input_type``): ``scale`` and ``zero_point`` say
    how to quantize a float input (``round(x / scale) + zero_point``) and how to
    dequantize an output. Float tensors have ``scale = zero_point = None``.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    scale: float | None = None
    zero_point: int | None = None


@dataclass(frozen=True)
class ImportedModel:
    """A model imported into Relax.

    Attributes:
        mod: an IRModule with one Relax function ``main``; weights are bound as constants.
        inputs: ``main``'s parameters in order.
        outputs: ``main``'s results in order (a tuple result when there are several).
        quantized: the source model carries int8 quantization (QDQ or QLinear ops).
        source: where the model came from (a path, ``"onnx.ModelProto"`` or ``"torch.export"``).
        int4_weights: `compiler.int4.weight_digest` of each INT4 weight of the source (their
            int8 values in the module): convolutions whose weights the kernel library may
            store packed two per byte.
    """

    mod: tvm.IRModule
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    quantized: bool
    source: str
    int4_weights: frozenset[str] = frozenset()

    def with_module(self, mod: tvm.IRModule, **changes) -> ImportedModel:
        """Returns a copy with ``mod`` replaced (and any other field given by keyword)."""
        return replace(self, mod=mod, **changes)
