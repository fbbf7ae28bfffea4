"""qanas.report: the self-contained HTML report of a run directory.

Example:
    >>> from qanas.report import build_report
    >>> build_report("runs/demo")  # doctest: +SKIP
    PosixPath('runs/demo/report.html')

Modules, one concern each: `load` (results.json, config.json, the compiled project),
`memory` (arena over the schedule from plan.json), `architecture` (the chosen subnet block
by block), `search_figures` / `deploy_figures` (matplotlib → base64 PNG), `sections_model` /
`sections_deploy` / `protocol` (results → sections), `html` (rendering), `build`.
"""

from qanas.report.architecture import Block, draw_blocks, subnet_blocks
from qanas.report.build import REPORT_NAME, SECTION_KEYS, build_report, build_report_sections
from qanas.report.load import RunData, load_run
from qanas.report.memory import MemoryProfile, memory_profile
from qanas.report.model import Figure, ReportError, Section, Table

__all__ = [
    "REPORT_NAME",
    "SECTION_KEYS",
    "Block",
    "Figure",
    "MemoryProfile",
    "ReportError",
    "RunData",
    "Section",
    "Table",
    "build_report",
    "build_report_sections",
    "draw_blocks",
    "load_run",
    "memory_profile",
    "subnet_blocks",
]
