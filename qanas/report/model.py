"""What a report is made of: figures, tables and sections (plain data, no HTML)."""

from __future__ import annotations

from dataclasses import dataclass, field

from qanas.errors import QanasError


class ReportError(QanasError, ValueError):
    """A run directory or results.json that a report cannot be built from."""


@dataclass(frozen=True)
class Figure:
    """One embedded PNG with the facts its caption must state.

    Attributes:
        png_base64: the PNG, base64-encoded (embedded as a data: URI).
        title: short name, also used in the Protocol section's list of figures.
        caption: what the figure shows.
        unit: the unit(s) of its axes, e.g. "latency: instructions; mIoU: fraction".
        source: where the numbers come from (the results.json key, file or tool).
        kind: "measured" (run on this host or emulator), "estimate" (a model's
            prediction) or "derived" (computed from other artifacts of the run).
    """

    png_base64: str
    title: str
    caption: str
    unit: str
    source: str
    kind: str


@dataclass(frozen=True)
class Table:
    """A small table: column headers and rows of already formatted cells."""

    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str = ""


@dataclass
class Section:
    """One section of the report; `present` is False for "not part of this run".

    Attributes:
        key: results.json key (or pseudo key) the section renders, e.g. "firmware".
        title: heading.
        present: whether the run holds data for it.
        missing_reason: for absent sections, what would produce the data.
        error: set when the run holds the section but it could not be rendered (then
            `present` is False and this says what is malformed).
        figures, tables, notes: the content, in order of appearance.
    """

    key: str
    title: str
    present: bool = True
    missing_reason: str = ""
    error: str = ""
    figures: list[Figure] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def absent(key: str, title: str, reason: str) -> Section:
    """A section the run does not contain; `reason` says which step would produce it."""
    return Section(key, title, present=False, missing_reason=reason)
