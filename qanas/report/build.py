"""`build_report`: the run directory's results → RUN/report.html, written atomically."""

from __future__ import annotations

from pathlib import Path

from qanas.report.html import render_page
from qanas.report.load import load_run
from qanas.report.model import Section, Table
from qanas.report.protocol import protocol_section, summary_table
from qanas.report.sections_deploy import (
    fidelity_section,
    firmware_section,
    memory_section,
    npu_section,
)
from qanas.report.sections_model import (
    candidates_section,
    chosen_section,
    lut_section,
    qat_section,
    rankcorr_section,
    search_section,
    training_section,
)
from qanas.utils.io import atomic_write_bytes

REPORT_NAME = "report.html"

SECTION_BUILDERS = (
    ("training", training_section), ("search", search_section), ("chosen", chosen_section),
    ("qat", qat_section), ("lut_validation", lut_section), ("memory", memory_section),
    ("firmware", firmware_section), ("fidelity", fidelity_section), ("npu", npu_section),
    ("rankcorr", rankcorr_section),
)
"""(results.json key, section builder) of the contract, in page order (docs/report.md)."""

SECTION_KEYS = tuple(key for key, _ in SECTION_BUILDERS) + ("protocol",)
"""Every section key the report knows; Protocol is always last."""


RENDER_ERRORS = (KeyError, TypeError, ValueError, IndexError, ZeroDivisionError,
                 AttributeError)
"""What a malformed results.json section raises while it is rendered (ReportError is a
ValueError)."""


def _safe(build, run, key: str) -> Section | None:
    try:
        return build(run)
    except RENDER_ERRORS as exc:
        detail = f"{type(exc).__name__}: {exc}"
        return Section(key, key, present=False, error=(
            f"results.json section {key!r} is malformed ({detail}); see docs/report.md for "
            "its schema and fix the step that wrote it"))


def build_sections(run) -> list[Section]:
    """Every section of the page for a loaded run, absent ones included, Protocol last.

    A section whose data is malformed does not stop the report: it is rendered as an
    error naming the section and the problem.
    """
    sections = [_safe(build, run, key) for key, build in SECTION_BUILDERS]
    legacy = _safe(candidates_section, run, "candidates")
    if legacy is not None:
        sections.insert(2, legacy)
    sections.append(_safe(lambda r: protocol_section(r, sections), run, "protocol"))
    return sections


def _summary(run) -> Table:
    try:
        return summary_table(run)
    except RENDER_ERRORS as exc:
        return Table(("quantity", "value"), (("summary", f"could not be built: "
                                              f"{type(exc).__name__}: {exc}"),))


def build_report(run_dir: str | Path, results: dict | None = None) -> Path:
    """Writes RUN/report.html for the run in `run_dir`; returns its path.

    Args:
        run_dir: the run directory (holding results.json, config.json, the project).
        results: the results dict; read from RUN/results.json when None.

    Raises:
        ReportError: no such directory, no results.json, or malformed run artifacts.

    Example:
        >>> build_report("runs/demo")  # doctest: +SKIP
        PosixPath('runs/demo/report.html')
    """
    path, _ = build_report_sections(run_dir, results)
    return path


def build_report_sections(run_dir: str | Path,
                          results: dict | None = None) -> tuple[Path, list[Section]]:
    """`build_report`, also returning the sections (for the CLI's rendered/missing lists)."""
    run = load_run(run_dir, results)
    sections = build_sections(run)
    title = (f"qanas run report: {run.results.get('space', '?')} on "
             f"{run.results.get('target', '?')}")
    page = render_page(title, _summary(run), sections)
    return atomic_write_bytes(Path(run_dir) / REPORT_NAME, page.encode("utf-8")), sections
