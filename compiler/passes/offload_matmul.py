"""Int8 products of two activations → calls of the kernel library's ``qanas_matmul_s8``.

`compiler.passes.lower_matmul` lowers attention's ``Q·Kᵀ`` and ``softmax·V`` (a MatMul of
two per-tensor int8 activations, batched over the heads) to::

    acc = matmul(astype(a, int32) [- zp_a], astype(b, int32) [- zp_b], out_dtype=int32)
    y   = requantize(acc)                   (one multiplier M and right shift n)

`OffloadKernels` (`compiler.passes.offload_kernels`) asks `matmul_call` about every
requantized int32 accumulator; for such a product it returns the library call with the
graph's own zero points, ``M`` and ``n`` (bit-exact by construction). The operands are
passed as the graph holds them, ``a`` as ``[batch][M][K]`` and ``b`` as
``[batch][K][N]``, except that a ``b`` made by swapping the last two axes of a tensor
(the head split of ``V`` before ``softmax·V``) is read from that tensor with
``transpose_b`` when ``K ≥ TRANSPOSED_MIN_K``: the kernel's dot products then read Bᵀ's
rows in place, and the transpose is not computed. A shorter reduction keeps ``b`` as
``[K][N]``, which Helium runs four columns per vector with no panel (the transpose it
reads is one TVM fuses into the layout change before it). No layout change: the tensors
are not images.

Left to TVM's kernel (never a wrong result, only a slower one): operands whose batch
dimensions differ (broadcasting), a per-column requantization, a reduction longer than
``QANAS_MATMUL_MAX_K`` (`MAX_K`, the int32 sums), or longer than the kernel's stack
panel (`PANEL_K`) when ``b`` is ``[K][N]``, and a MatMul with a constant weight (Gemm,
whose zero point is folded into an offset; none of our spaces has one).
"""

from __future__ import annotations

import numpy as np

from compiler.kernels.calls import LibraryCall
from compiler.passes._common import is_op, shape_of

FUNCTION = "qanas_matmul_s8"
"""The library function an int8 product of two activations becomes."""

MAX_K = 32767
"""``QANAS_MATMUL_MAX_K``: the longest reduction whose partial sums stay inside int32."""

TRANSPOSED_MIN_K = 16
"""The shortest reduction read through ``transpose_b`` (one Helium vector of Bᵀ's row)."""

PANEL_K = 1024
"""The longest reduction the kernel takes with ``b`` as ``[K][N]`` (its stack panel of
Bᵀ rows, ``QK_MM_PANEL`` in ``qk_matmul.c``)."""


def _swapped_last_axes(groups, expr):
    """The tensor `expr` is ``permute_dims`` of with only its last two axes swapped, else None."""
    value = groups.value(expr)
    if not is_op(value, "relax.permute_dims") or value.attrs.axes is None:
        return None
    axes = [int(a) for a in value.attrs.axes]
    rank = len(axes)
    if rank < 2 or axes != [*range(rank - 2), rank - 1, rank - 2]:
        return None
    return value.args[0]


def matmul_call(groups, final, tail, acc, multiplier: np.ndarray):
    """The library call computing `final` when it requantizes an int8 × int8 product.

    Args:
        groups: `OffloadKernels`' ``_Groups`` over ``main`` (bindings and matchers).
        final: the int8 variable the group ends in.
        tail: its requantization (``_Tail``: right shift, zero point, clamp, members).
        acc: the int32 accumulator the tail requantizes.
        multiplier: the tail's multiplier ``M`` (int64 array).

    Returns:
        ``(LibraryCall, [a, b], [multiplier, shift], output shape, members)``, or None.
    """
    got = groups.centred_product(acc, "relax.matmul", tail, multiplier)
    if got is None:
        return None
    _, (a, zp_a), (b, zp_b), members = got
    sa, sb, out = shape_of(a), shape_of(b), shape_of(final)
    if len(sa) < 2 or len(sa) != len(sb) or sa[:-2] != sb[:-2] or sa[-1] != sb[-2]:
        return None
    m, k, n = sa[-2], sa[-1], sb[-1]
    if tuple(out) != (*sa[:-1], n):
        return None
    b_t = _swapped_last_axes(groups, b) if k >= TRANSPOSED_MIN_K else None
    if b_t is not None:
        b = b_t
    if k > MAX_K or (b_t is None and k > PANEL_K):
        return None
    params = {"matmul": {"batch": int(np.prod(sa[:-2], dtype=np.int64)), "m": m, "k": k,
                         "n": n, "transpose_b": int(b_t is not None), "a_zero_point": zp_a,
                         "b_zero_point": zp_b},
              "output_zero_point": tail.zero_point, "qmin": tail.qmin, "qmax": tail.qmax}
    constants = [np.full(n, int(multiplier.reshape(-1)[0]), np.int32),
                 np.full(n, 31 - int(tail.n.reshape(-1)[0]), np.int32)]
    return LibraryCall(FUNCTION, params), [a, b], constants, tuple(out), members
