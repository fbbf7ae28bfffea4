"""Matplotlib on the Agg backend, and figures turned into base64 PNG strings."""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")

from matplotlib import pyplot as plt  # noqa: E402 - the backend must be chosen first

DPI = 100
COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf")


def subplots(nrows: int = 1, ncols: int = 1, width: float = 7.5, height: float = 3.6,
             **kwargs):
    """`plt.subplots` with the report's size and resolution; returns (fig, axes)."""
    return plt.subplots(nrows, ncols, figsize=(width, height), dpi=DPI, squeeze=False,
                        **kwargs)


def to_base64(fig) -> str:
    """Renders `fig` to PNG, closes it and returns the base64 text of the PNG."""
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def short_arch(arch: str, width: int = 48) -> str:
    """An architecture string cut to `width` characters (the full one is in the tables)."""
    return arch if len(arch) <= width else arch[: width - 1] + "…"


def median(values: Sequence[float]) -> float:
    """Median of a non-empty sequence of numbers."""
    s = sorted(float(v) for v in values)
    mid = len(s) // 2
    return s[mid] if len(s) % 2 else (s[mid - 1] + s[mid]) / 2
