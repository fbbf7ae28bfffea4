"""Formatting of numbers for the report's tables (None prints as an em dash)."""

from __future__ import annotations

DASH = "—"


def num(value, digits: int = 4) -> str:
    """A number: integers with thousands separators, floats with `digits` significant."""
    if value is None:
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 10 ** digits else f"{value:.{digits}g}"
    return str(value)


def nbytes(value) -> str:
    """Bytes with the KiB figure beside them, e.g. ``442,368 B (432.0 KiB)``."""
    if value is None:
        return DASH
    return f"{int(value):,} B ({int(value) / 1024:.1f} KiB)"


def pct(fraction, digits: int = 2) -> str:
    """A fraction in [0, 1] as a percentage."""
    return DASH if fraction is None else f"{100 * float(fraction):.{digits}f} %"


def text(value) -> str:
    """Any JSON value as a short cell: lists joined by commas, dicts as k=v pairs."""
    if value is None:
        return DASH
    if isinstance(value, dict):
        return ", ".join(f"{k}={text(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(text(v) for v in value)
    return num(value) if isinstance(value, (int, float)) else str(value)
