"""Attention's ops without weights as Brevitas's exporter writes them: layout and products.

TopFormer's attention (`qanas.supernet.topformer_blocks.attention_core`) splits heads
with ``torch.flatten`` / ``torch.reshape`` / ``torch.transpose``, multiplies with
``torch.matmul``, and the injections take their slice of the tokens with
``torch.narrow``. The TorchScript exporter writes these as Reshape (its target computed
from Shape ops, which `qanas.quant.export` folds to a constant: for a flatten the kept
dimensions and a -1), Transpose, MatMul and Slice (constant starts, ends, axes); here
they are written directly, with the same constants and attributes.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from qanas.cost.qdq_writer import QdqWriter, UnsupportedGraph


def _flatten(w: QdqWriter, x: str, start_dim: int, end_dim: int, name: str) -> str:
    """Reshape to the kept dimensions around a -1 (ONNX's Flatten, which torch uses for a
    2-D result, is not written: such a subnet goes to Brevitas's exporter)."""
    shape = w.shape[x]
    rank = len(shape)
    end = end_dim % rank if rank else end_dim
    two_d = (start_dim == 1 and end == rank - 1) or (start_dim == 0 and end == rank - 2)
    if rank < 2 or start_dim < 0 or end <= start_dim or two_d:
        raise UnsupportedGraph(f"flatten of dims {start_dim}..{end_dim} of a rank-{rank} tensor")
    target = (*shape[:start_dim], -1, *shape[end + 1:])
    out = (*shape[:start_dim], math.prod(shape[start_dim:end + 1]), *shape[end + 1:])
    return w.node("Reshape", [x, w.const(np.array(target, np.int64), f"{name}_shape")], out,
                  name, allowzero=0)


def _reshape(w: QdqWriter, x: str, shape, name: str) -> str:
    """Reshape to a constant target (-1 at most once, no 0)."""
    if not all(isinstance(d, int) for d in shape) or 0 in shape or list(shape).count(-1) > 1:
        raise UnsupportedGraph(f"reshape to {shape!r}")
    size = math.prod(w.shape[x])
    known = math.prod(d for d in shape if d != -1)
    out = tuple(size // known if d == -1 else d for d in shape)
    if math.prod(out) != size:
        raise UnsupportedGraph(f"reshape of {w.shape[x]} to {shape!r}")
    return w.node("Reshape", [x, w.const(np.array(shape, np.int64), f"{name}_shape")], out,
                  name, allowzero=0)


def _transpose(w: QdqWriter, x: str, dim0: int, dim1: int, name: str) -> str:
    """Transpose swapping two axes (none written when they are the same axis)."""
    if dim0 == dim1:
        return x
    perm = list(range(len(w.shape[x])))
    perm[dim0], perm[dim1] = perm[dim1], perm[dim0]
    return w.node("Transpose", [x], tuple(w.shape[x][p] for p in perm), name, perm=perm)


def _narrow(w: QdqWriter, x: str, dim: int, start: int, length: int, name: str) -> str:
    """Slice with 1-element starts, ends and axes (no steps)."""
    shape = list(w.shape[x])
    if start < 0 or length < 0 or start + length > shape[dim]:
        raise UnsupportedGraph(f"narrow of {start}+{length} along {dim} of {tuple(shape)}")
    shape[dim] = length
    inputs = [x, *(w.const(np.array([v], np.int64), f"{name}_{part}")
                   for v, part in ((start, "starts"), (start + length, "ends"), (dim, "axes")))]
    return w.node("Slice", inputs, shape, name)


def _matmul(w: QdqWriter, a: str, b: str, name: str) -> str:
    """MatMul of two tensors of rank 2 or more (batch dimensions broadcast)."""
    sa, sb = w.shape[a], w.shape[b]
    if len(sa) < 2 or len(sb) < 2 or sa[-1] != sb[-2]:
        raise UnsupportedGraph(f"matmul of {sa} and {sb}")
    batch = tuple(int(d) for d in np.broadcast_shapes(sa[:-2], sb[:-2]))
    return w.node("MatMul", [a, b], (*batch, sa[-2], sb[-1]), name)


@functools.cache
def _writers() -> dict:
    """Per torch function: its writer, parameter names and defaults."""
    import torch

    return {
        torch.flatten: (_flatten, ("input", "start_dim", "end_dim"), {"start_dim": 0,
                                                                     "end_dim": -1}),
        torch.reshape: (_reshape, ("input", "shape"), {}),
        torch.transpose: (_transpose, ("input", "dim0", "dim1"), {}),
        torch.narrow: (_narrow, ("input", "dim", "start", "length"), {}),
        torch.matmul: (_matmul, ("input", "other"), {}),
    }


def write_layout(w: QdqWriter, fn, args: tuple, kwargs: dict, name: str) -> str | None:
    """Writes the call ``fn(*args, **kwargs)`` (tensor arguments: the writer's names) if
    `fn` is one of the functions above, and returns its output; None for any other `fn`.

    Raises:
        UnsupportedGraph: a call of one of them that the exporter would write otherwise.
    """
    entry = _writers().get(fn)
    if entry is None:
        return None
    writer, params, defaults = entry
    bound = dict(defaults)
    bound.update(zip(params, args, strict=False))
    bound.update(kwargs)
    if len(args) > len(params) or set(bound) != set(params):
        raise UnsupportedGraph(f"{fn.__name__} called with {len(args)} arguments and "
                               f"keywords {sorted(kwargs)}")
    return writer(w, *(bound[p] for p in params), name)


__all__ = ["write_layout"]
