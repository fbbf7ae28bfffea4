"""Int4 convolution weights packed two per byte, as ``runtime/c/kernels/qk_conv_s4.c`` reads
them (layout in ``qanas_kernels_s4.h``).

One row per output channel: its ``K = kernel_h · kernel_w · in_c / groups`` weights in
OHWI order, padded with zeros to a multiple of `GROUP`, each group of 8 weights
``w0 .. w7`` one 32-bit word whose byte ``i`` holds ``w_i`` (low nibble) and ``w_(i+4)``
(high nibble). The layout is the same on every ISA.
"""

from __future__ import annotations

import numpy as np

from compiler.int4 import INT4_MAX, INT4_MIN
from compiler.kernels import packing

GROUP = 8
"""Weights per packed 32-bit word; a row is padded to a multiple of it."""

PATCH_MAX = 1152
"""The largest k x k window ``qanas_conv2d_s4`` gathers (``QANAS_S4_PATCH_MAX``)."""

MAX_DEPTH = 65536
"""The longest row (``QANAS_S4_MAX_DEPTH``): its 16-times-scaled sums stay in int32."""


def row_bytes(depth: int) -> int:
    """Bytes of one packed row of `depth` weights (``qanas_s4_row_bytes``)."""
    return -(-depth // GROUP) * GROUP // 2


def pack_rows(rows: np.ndarray) -> np.ndarray:
    """(O, K) integer weights in -8..7 → (O, row_bytes(K)) uint8, the nibble layout above.

    Raises:
        ValueError: a weight outside -8..7 (not an int4 value).
    """
    rows = np.asarray(rows)
    if rows.size and (rows.min() < INT4_MIN or rows.max() > INT4_MAX):
        raise ValueError(f"int4 weights must lie in [{INT4_MIN}, {INT4_MAX}], got "
                         f"[{int(rows.min())}, {int(rows.max())}]")
    o, k = rows.shape
    padded = np.zeros((o, -(-k // GROUP) * GROUP), np.int64)
    padded[:, :k] = rows
    nibbles = (padded & 0xF).reshape(o, -1, 2, GROUP // 2)  # [o][group][half][i]
    packed = nibbles[:, :, 0, :] | (nibbles[:, :, 1, :] << 4)
    return packed.reshape(o, -1).astype(np.uint8)


def unpack_rows(packed: np.ndarray, depth: int) -> np.ndarray:
    """The inverse of `pack_rows`: (O, row_bytes(depth)) uint8 → (O, depth) int8."""
    packed = np.asarray(packed, np.uint8).astype(np.int64)
    o = packed.shape[0]
    groups = packed.reshape(o, -1, GROUP // 2)
    nibbles = np.stack([groups & 0xF, groups >> 4], axis=2).reshape(o, -1)
    return (((nibbles ^ 8) - 8)[:, :depth]).astype(np.int8)


def pack_conv(w: np.ndarray) -> np.ndarray:
    """OIHW conv weights (-8..7) → packed OHWI rows, (O, row_bytes(H·W·I)) uint8."""
    o = w.shape[0]
    return pack_rows(np.ascontiguousarray(np.asarray(w).transpose(0, 2, 3, 1)).reshape(o, -1))


def pack_conv_folded(weights: np.ndarray, bias: np.ndarray | None,
                     input_zero_point: int) -> packing.PackedConv:
    """The int4 twin of `packing.pack_conv` (ungrouped or grouped, any ISA): OIHW weights
    (-8..7) as packed rows (`pack_conv`, flat uint8), the bias with ``−zp_x · Σ w`` folded
    in.

    Raises:
        ValueError: a weight outside -8..7, a bias of the wrong shape, or a folded bias
            beyond int32.
    """
    w = np.asarray(weights)
    folded = packing.fold_bias(w.reshape(w.shape[0], -1), bias, input_zero_point)
    return packing.PackedConv(pack_conv(w).reshape(-1), folded)


__all__ = ["GROUP", "MAX_DEPTH", "PATCH_MAX", "pack_conv", "pack_conv_folded", "pack_rows",
           "row_bytes", "unpack_rows"]
