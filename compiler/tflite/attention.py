"""Attention groups as TFLite int8 builtins: a product of two activations, and softmax.

The counterparts of `compiler.reference.attention`:

* ``Q(MatMul(DQ a, DQ b))`` of two per-tensor int8 activations → BATCH_MATMUL (int8 ×
  int8 → int8, int32 accumulation, one requantization by ``s_a · s_b / s_out``, the
  reference's arithmetic); 4-D operands are brought to ONNX axis order first and the
  result back to NHWC (`compiler.tflite.layout`);
* ``Q(Softmax(DQ x))`` → SOFTMAX along the last stored axis (the ONNX axis moved there
  when it is not), whose int8 output TFLite fixes at scale 1/256, zero point −128; a
  QUANTIZE brings it to the group's quantization when that differs (ours is often
  uint8 at 1/255, i.e. int8 1/255 with zero point −128: see docs/tflite-export.md for
  the 1-LSB consequence).

Each ``emit_*`` has the contract of `compiler.tflite.ops`.
"""

from __future__ import annotations

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from compiler.errors import UnsupportedOpError
from compiler.reference.values import OutQuant, is_op
from compiler.tflite.layout import TO_NCHW, from_onnx_order, permute, to_onnx_order
from compiler.tflite.model import Act, Graph, Quant, nhwc
from compiler.tflite.ops import requantize, tflite_quant

#: TFLite's int8 SOFTMAX output quantization (TFLite Micro and LiteRT require it).
SOFTMAX_QUANT = Quant.per_tensor(1.0 / 256.0, -128)


def emit_batch_matmul(g: Graph, value, out: OutQuant, name: str) -> int | None:
    """``Q(MatMul(DQ a, DQ b))`` of two int8 activations as BATCH_MATMUL."""
    if not is_op(value, "MatMul"):
        return None
    a, b = value.inputs[:2]
    if not (isinstance(a, Act) and isinstance(b, Act)):
        if any(isinstance(v, Act) for v in (a, b)):
            raise UnsupportedOpError(
                f"{value.describe()}: a MatMul of an activation and a constant (a Linear "
                "layer) or a float expression has no TFLite export yet; use a 1×1 Conv "
                "(search spaces do) or compile the model to C with compiler.compile_model")
        return None
    rank = len(value.out_shape)
    if len(a.shape) != rank or len(b.shape) != rank or rank < 2:
        raise UnsupportedOpError(f"{value.describe()}: operands of ranks {len(a.shape)} and "
                                 f"{len(b.shape)} (output rank {rank}); reshape both to the "
                                 "output's rank first")
    ta = to_onnx_order(g, a.tensor, rank, f"{name}/lhs")
    tb = to_onnx_order(g, b.tensor, rank, f"{name}/rhs")
    y = g.tensor(f"{name}/matmul" if rank == 4 else name, tuple(value.out_shape), "int8",
                 tflite_quant(out))
    g.op("BATCH_MATMUL", [ta, tb], [y], schema.BatchMatMulOptionsT())
    return from_onnx_order(g, y, rank, name)


def emit_softmax(g: Graph, value, out: OutQuant, name: str) -> int | None:
    """``Q(Softmax(DQ x))`` as SOFTMAX (output 1/256, −128) + QUANTIZE to the group's."""
    if not is_op(value, "Softmax"):
        return None
    x = value.inputs[0]
    if not isinstance(x, Act):
        return None
    rank = len(x.shape)
    axis = int(value.attrs.get("axis", -1))
    axis = axis + rank if axis < 0 else axis
    # stored → ONNX order → softmax axis last, and back, each as one permutation
    onnx_order = TO_NCHW if rank == 4 else tuple(range(rank))
    last = [i for i in range(rank) if i != axis] + [axis]
    forward = tuple(onnx_order[i] for i in last)
    back = tuple(int(i) for i in np.argsort(forward))
    t = permute(g, x.tensor, forward, f"{name}/axis_last")
    opts = schema.SoftmaxOptionsT()
    opts.beta = 1.0
    y = g.tensor(f"{name}/softmax", g.tensors[t].shape, "int8", SOFTMAX_QUANT)
    g.op("SOFTMAX", [t], [y], opts)
    y = requantize(g, y, tflite_quant(out), f"{name}/requantized")
    y = permute(g, y, back, name)
    if g.tensors[y].shape != nhwc(value.out_shape or x.shape):
        raise AssertionError(f"{value.describe()}: softmax layout {g.tensors[y].shape}")
    return y


__all__ = ["SOFTMAX_QUANT", "emit_batch_matmul", "emit_softmax"]
