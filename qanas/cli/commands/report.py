"""`qanas report RUN_DIR`: (re)builds the self-contained HTML report of a run.

Example:
    qanas report runs/demo --json

Reads RUN_DIR/results.json (and config.json, the chosen project's compile.json and
plan.json) of a `qanas demo` run, or the front.json and archive of a `qanas search`
run, and writes RUN_DIR/report.html; prints the sections rendered, those the run
does not contain (`missing`; docs/report.md lists them) and, among those, the ones whose
data is malformed (`errors`: section and problem).
"""

from __future__ import annotations

import argparse
import sys

from qanas.cli.command import Command


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR",
                        help="run directory: a `qanas demo` run (results.json, e.g. runs/demo) or "
                             "a `qanas search` --out folder (front.json + archive)")


def _run(args: argparse.Namespace) -> dict:
    from qanas.report import build_report_sections

    path, sections = build_report_sections(args.run_dir)
    rendered = [s.key for s in sections if s.present]
    missing = [s.key for s in sections if not s.present]
    errors = [{"section": s.key, "error": s.error} for s in sections if s.error]
    print(f"[qanas report] wrote {path} ({len(rendered)} sections, "
        f"{sum(len(s.figures) for s in sections)} figures)", file=sys.stderr)
    return {"report": str(path), "sections": rendered, "missing": missing, "errors": errors}


COMMAND = Command("report", "build the self-contained HTML report of a run directory",
                  _add_arguments, _run)
