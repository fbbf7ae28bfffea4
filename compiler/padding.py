"""ONNX ``pads`` / ``auto_pad`` of Conv and pooling as explicit ``(top, left, bottom, right)``.

Shared by the frontend (`compiler.frontend.onnx_ops`), the NumPy integer reference and
the TFLite exporter (`compiler.reference.qdq_graph.pool_attrs`), so all three pad the
same way. No TVM here: the reference must not need it.

ONNX semantics (Conv, AveragePool, MaxPool): ``VALID`` pads nothing; ``SAME_UPPER`` and
``SAME_LOWER`` pad so that ``out = ceil(in / stride)``, with a total of
``max(0, (out - 1) · stride + (k - 1) · dilation + 1 - in)`` split in half, the odd
element at the end (``SAME_UPPER``, TensorFlow's ``SAME``) or at the beginning
(``SAME_LOWER``); ``NOTSET`` uses the ``pads`` attribute.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from compiler.errors import UnsupportedOpError

AUTO_PAD_MODES = ("NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER")
"""The ``auto_pad`` values ONNX defines; all of them are supported."""


def auto_pad_mode(attrs: dict) -> str:
    """The node's ``auto_pad`` as a str (ONNX stores it as bytes); ``NOTSET`` when absent."""
    mode = attrs.get("auto_pad", b"NOTSET")
    return mode.decode() if isinstance(mode, bytes) else str(mode)


def same_pads(mode: str, in_hw: Sequence[int], kernel_hw: Sequence[int],
              strides: Sequence[int], dilations: Sequence[int]) -> tuple[int, int, int, int]:
    """``(top, left, bottom, right)`` of ``SAME_UPPER`` / ``SAME_LOWER`` padding.

    Example:
        >>> same_pads("SAME_UPPER", (7, 8), (3, 3), (2, 2), (1, 1))
        (1, 0, 1, 1)
        >>> same_pads("SAME_LOWER", (7, 8), (3, 3), (2, 2), (1, 1))
        (1, 1, 1, 0)
    """
    begin, end = [], []
    for size, k, s, d in zip(in_hw, kernel_hw, strides, dilations, strict=True):
        out = math.ceil(int(size) / int(s))
        total = max(0, (out - 1) * int(s) + (int(k) - 1) * int(d) + 1 - int(size))
        small, large = total // 2, total - total // 2
        begin.append(small if mode == "SAME_UPPER" else large)
        end.append(large if mode == "SAME_UPPER" else small)
    return begin[0], begin[1], end[0], end[1]


def explicit_pads(attrs: dict, in_hw: Sequence[int] | None = None,
                  kernel_hw: Sequence[int] | None = None,
                  where: str = "node") -> tuple[int, int, int, int]:
    """A Conv / pool node's padding as ``(top, left, bottom, right)`` (ONNX and Relax order).

    Args:
        attrs: the node's attributes (``pads``, ``auto_pad``, ``strides``, ``dilations``).
        in_hw: the input's spatial size; needed for ``SAME_*``.
        kernel_hw: the kernel's spatial size (``kernel_shape``, or a Conv weight's);
            needed for ``SAME_*``.
        where: the node, for error messages.

    Raises:
        UnsupportedOpError: an ``auto_pad`` value outside `AUTO_PAD_MODES`, or ``SAME_*``
            without static input and kernel sizes.
    """
    mode = auto_pad_mode(attrs)
    if mode not in AUTO_PAD_MODES:
        raise UnsupportedOpError(f"{where}: auto_pad {mode!r} is not an ONNX value; "
                                 f"use one of {', '.join(AUTO_PAD_MODES)}")
    if mode == "VALID":
        return (0, 0, 0, 0)
    if mode == "NOTSET":
        pads = [int(p) for p in attrs.get("pads", [0, 0, 0, 0])]
        return pads[0], pads[1], pads[2], pads[3]
    if in_hw is None or kernel_hw is None or not all(int(v) > 0 for v in (*in_hw, *kernel_hw)):
        raise UnsupportedOpError(f"{where}: auto_pad {mode} needs static input and kernel "
                                 "sizes; give the model static shapes (onnx.shape_inference)")
    return same_pads(mode, in_hw, kernel_hw, attrs.get("strides", [1, 1]),
                     attrs.get("dilations", [1, 1]))
