"""The Pascal VOC colour map, used to read RGB VOC masks and to draw any mask."""

from __future__ import annotations

import numpy as np


def color_map(n: int = 256) -> np.ndarray:
    """The Pascal VOC palette: `n` distinct RGB colours, index 255 is the border colour.

    Args:
        n: number of entries (at most 256).

    Returns:
        uint8 `[n, 3]`; entry 0 is black, 255 is (224, 224, 192).
    """
    cmap = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap[i] = (r, g, b)
    return cmap


def colorize(mask: np.ndarray) -> np.ndarray:
    """Paints a train-id mask with the VOC palette (ignore 255 in the border colour).

    Args:
        mask: integer `[H, W]` with values in 0..255.

    Returns:
        uint8 `[H, W, 3]` RGB image.
    """
    return color_map()[np.asarray(mask).astype(np.uint8)]
