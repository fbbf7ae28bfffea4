"""Data movement between the TFLite layout (NHWC for 4-D) and the ONNX one (NCHW).

The exported graph keeps every 4-D tensor NHWC (`compiler.tflite.model.nhwc`). The
attention ops compute in ONNX axis order (a MatMul over the last two ONNX axes, a
Softmax along an ONNX axis), so they reorder their operands: `permute` writes a
TRANSPOSE, or a RESHAPE when the reordering moves only axes of length 1 (the bytes do
not move; Vela and the interpreters treat it as free). An ONNX Transpose becomes one
TRANSPOSE in the stored layout (`onnx_transpose`), an ONNX Slice one STRIDED_SLICE
(`onnx_slice`).
"""

from __future__ import annotations

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from compiler.errors import UnsupportedOpError
from compiler.tflite.model import Graph, tflite_axis

#: NHWC → NCHW and NCHW → NHWC as TRANSPOSE permutations.
TO_NCHW, TO_NHWC = (0, 3, 1, 2), (0, 2, 3, 1)


def _identity(rank: int) -> tuple[int, ...]:
    return tuple(range(rank))


def stored_perm(perm, rank: int) -> tuple[int, ...]:
    """The permutation of the stored tensors for ONNX ``perm`` (the same for rank ≠ 4).

    Stored in = NCHW in ∘ TO_NHWC, so out_stored = in_stored ∘ TO_NCHW ∘ perm ∘ TO_NHWC.
    """
    if rank != 4:
        return tuple(int(p) for p in perm)
    return tuple(TO_NCHW[int(perm[TO_NHWC[i]])] for i in range(4))


def permute(g: Graph, x: int, perm, name: str) -> int:
    """``x`` transposed by ``perm``: a RESHAPE when only length-1 axes move, else TRANSPOSE."""
    src = g.tensors[x]
    perm = tuple(int(p) for p in perm)
    if perm == _identity(len(perm)):
        return x
    shape = tuple(src.shape[p] for p in perm)
    moved = [p for p in perm if src.shape[p] != 1]
    y = g.tensor(name, shape, src.dtype, src.quant)
    if moved == sorted(moved):
        s = g.const(f"{name}/shape", np.array(shape, np.int32), "int32")
        opts = schema.ReshapeOptionsT()
        opts.newShape = list(shape)
        g.op("RESHAPE", [x, s], [y], opts)
    else:
        p = g.const(f"{name}/perm", np.array(perm, np.int32), "int32")
        g.op("TRANSPOSE", [x, p], [y])
    return y


def to_onnx_order(g: Graph, x: int, rank: int, name: str) -> int:
    """A 4-D stored (NHWC) tensor in ONNX (NCHW) order; other ranks unchanged."""
    return permute(g, x, TO_NCHW, name) if rank == 4 else x


def from_onnx_order(g: Graph, x: int, rank: int, name: str) -> int:
    """A 4-D tensor in ONNX (NCHW) order back to the stored NHWC; other ranks unchanged."""
    return permute(g, x, TO_NHWC, name) if rank == 4 else x


def onnx_transpose(g: Graph, x: int, perm, name: str) -> int:
    """ONNX ``Transpose(perm)`` of a stored tensor, as one TRANSPOSE (or RESHAPE)."""
    return permute(g, x, stored_perm(perm, len(perm)), name)


def onnx_slice(g: Graph, x: int, onnx_shape, args, what: str, name: str) -> int:
    """ONNX ``Slice`` with constant ``args`` (starts, ends[, axes[, steps]]) as STRIDED_SLICE."""
    rank = len(onnx_shape)
    starts, ends = args[0], args[1]
    axes = args[2] if len(args) > 2 and args[2] is not None else np.arange(len(starts))
    steps = args[3] if len(args) > 3 and args[3] is not None else np.ones(len(starts), np.int64)
    src = g.tensors[x]
    begin, end, strides = [0] * rank, list(src.shape), [1] * rank
    for start, stop, axis, step in zip(starts, ends, axes, steps, strict=True):
        axis = int(axis) + rank if int(axis) < 0 else int(axis)
        b, e, s = slice(int(start), int(min(stop, np.iinfo(np.int64).max)),
                        int(step)).indices(int(onnx_shape[axis]))
        if s < 1:
            raise UnsupportedOpError(f"{what}: a Slice with step {s} (reversing) has no TFLite "
                                     "export; slice forwards")
        t = tflite_axis(axis, rank)
        begin[t], end[t], strides[t] = b, max(e, b), s
    shape = tuple(len(range(b, e, s)) for b, e, s in zip(begin, end, strides, strict=True))
    consts = [g.const(f"{name}/{k}", np.array(v, np.int32), "int32")
              for k, v in (("begin", begin), ("end", end), ("strides", strides))]
    y = g.tensor(name, shape, src.dtype, src.quant)
    g.op("STRIDED_SLICE", [x, *consts], [y], schema.StridedSliceOptionsT())
    return y


__all__ = ["TO_NCHW", "TO_NHWC", "from_onnx_order", "onnx_slice", "onnx_transpose", "permute",
           "stored_perm", "to_onnx_order"]
