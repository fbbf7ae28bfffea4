"""The TFLite group kinds in the order `compiler.reference.groups.GROUPS` claims patterns."""

from __future__ import annotations

from compiler.errors import UnsupportedOpError
from compiler.reference.values import FloatOp, OutQuant
from compiler.tflite.attention import emit_batch_matmul, emit_softmax
from compiler.tflite.model import Graph
from compiler.tflite.ops import emit_avg_pool, emit_concat, emit_conv, emit_elementwise
from compiler.tflite.unary import emit_requantize, emit_resize, emit_table

#: The group kinds, in the order of `compiler.reference.groups.GROUPS`, then the
#: attention groups of `compiler.reference.attention.ATTENTION_GROUPS`.
EMITTERS = (emit_conv, emit_elementwise, emit_concat, emit_avg_pool, emit_resize,
            emit_requantize, emit_table, emit_batch_matmul, emit_softmax)

#: ONNX ops (inside DQ → op → Q groups, or moving int8 data) the exporter maps to TFLite.
SUPPORTED_ONNX_OPS = ("Conv", "Add", "Sub", "Mul", "Concat", "Resize", "AveragePool",
                      "GlobalAveragePool", "Sigmoid", "HardSwish", "HardSigmoid",
                      "Mul(x, HardSigmoid(x))", "Relu", "Clip", "MatMul of two activations",
                      "Softmax", "MaxPool", "Reshape", "Flatten", "Transpose", "Slice",
                      "Identity")


def emit_group(g: Graph, value, out: OutQuant, name: str) -> int:
    """Appends the TFLite ops of ``QuantizeLinear(value)``; raises when none applies."""
    for emit in EMITTERS:
        y = emit(g, value, out, name)
        if y is not None:
            return y
    what = value.describe() if isinstance(value, FloatOp) else type(value).__name__
    raise UnsupportedOpError(
        f"no TFLite int8 export for the group ending in QuantizeLinear {name!r}: {what}. "
        f"Supported ONNX ops: {', '.join(SUPPORTED_ONNX_OPS)} (per-tensor int8 activations, "
        "per-channel int8 conv weights); change the model to use them or compile it to C "
        "with compiler.compile_model instead")
