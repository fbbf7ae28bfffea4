"""Reading a run directory: results.json, config.json and the chosen subnet's C project.

Paths inside results.json may be absolute, relative to the working directory the run
was started from (``runs/demo/project0``) or relative to the run directory; they are
resolved in that order, then by their last component inside the run directory, so a
run directory that was moved or copied still finds its project.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qanas.report.model import ReportError

RESULTS_NAME = "results.json"
CONFIG_NAME = "config.json"
FRONT_NAME = "front.json"


def read_json(path: Path, what: str) -> Any:
    """Parses the JSON file `path`; raises `ReportError` naming `what` it should be."""
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as exc:
        raise ReportError(f"{path} is not valid JSON ({exc}); it should hold {what}; rerun "
                          "the step that wrote it") from exc


def resolve_path(run_dir: Path, value: str | None) -> Path | None:
    """The existing path `value` from results.json refers to, or None."""
    if not value:
        return None
    p = Path(value)
    candidates = [p] if p.is_absolute() else [p, run_dir / p]
    candidates.append(run_dir / p.name)
    return next((c for c in candidates if c.exists()), None)


@dataclass
class RunData:
    """Everything the report reads, loaded once.

    Attributes:
        run_dir: the run directory.
        results: the results dict (results.json, or the dict given to `build_report`).
        config: config.json of the run ({} when absent).
        project: the chosen subnet's compiled C project directory, when it exists.
        compile_info: the project's compile.json.
        plan: the project's plan.json (buffers with lifetimes, the memory plan).
    """

    run_dir: Path
    results: dict
    config: dict = field(default_factory=dict)
    project: Path | None = None
    compile_info: dict | None = None
    plan: dict | None = None

    def section(self, key: str) -> Any:
        """`results[key]`, or None when the run has no such section (or it is empty)."""
        value = self.results.get(key)
        return value if value not in (None, {}, []) else None

    def protocol(self) -> dict:
        """results["protocol"] completed from config.json (versions, seed, image size...)."""
        proto = dict(self.results.get("protocol") or {})
        cfg = self.config.get("config") or {}
        proto.setdefault("versions", self.config.get("versions") or {})
        if proto.get("seed") is None:
            proto["seed"] = self.config.get("seed", cfg.get("seed"))
        for key in ("image_size", "dataset"):
            if proto.get(key) is None and cfg.get(key) is not None:
                proto[key] = cfg[key]
        if proto.get("image_size") is None and self.compile_info:
            shape = (self.compile_info.get("inputs") or [{}])[0].get("shape") or []
            if len(shape) == 4:
                proto["image_size"] = list(shape[2:])
        proto.setdefault("space", self.results.get("space") or cfg.get("space"))
        proto.setdefault("target", self.results.get("target") or cfg.get("target"))
        if self.config.get("argv"):
            proto.setdefault("command", " ".join(str(a) for a in self.config["argv"]))
        return proto

    def num_classes(self) -> int | None:
        """Output classes of the deployed model (its compile.json output shape), if known."""
        explicit = (self.results.get("protocol") or {}).get("num_classes")
        if explicit is not None:
            return int(explicit)
        if self.compile_info:
            shape = (self.compile_info.get("outputs") or [{}])[0].get("shape") or []
            if len(shape) == 4:
                return int(shape[1])
        return None


def search_results(run_dir: Path) -> dict:
    """The results dict of a `qanas search` directory: its front and every archived subnet.

    The `search` section is rebuilt from ``front.json`` (summary and front) and the
    evaluation archive (every subnet of the same target and metric set); the knee is
    marked as the chosen architecture.
    """
    from qanas.search.archive import ARCHIVE_NAME, EvalArchive

    front = read_json(run_dir / FRONT_NAME, "the front written by `qanas search`")
    if not isinstance(front, dict) or not isinstance(front.get("front"), list):
        raise ReportError(f"{run_dir / FRONT_NAME} holds no front list; rerun `qanas search`")
    evaluated: list[dict] = []
    if (run_dir / ARCHIVE_NAME).is_file():
        with EvalArchive(run_dir / ARCHIVE_NAME) as archive:
            records = archive.all(front.get("target"), front.get("metric_set"))
        evaluated = [{**r.to_dict(), "feasible": r.miou is not None} for r in records]
    search = {"algo": front.get("algorithm"), "target": front.get("target"),
              "budget": front.get("budget"), "objectives": front.get("objectives"),
              "constraints": front.get("budgets") or {}, "front": front["front"],
              "evaluated": evaluated or front["front"], "chosen_arch": front.get("knee")}
    return {"run_dir": str(run_dir), "space": front.get("space"),
            "target": front.get("target"), "search": search}


def load_run(run_dir: str | Path, results: dict | None = None) -> RunData:
    """Loads `run_dir` (and its results.json unless `results` is given).

    Raises:
        ReportError: the directory or its results.json is missing or malformed.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise ReportError(f"run directory {run_dir} does not exist; pass the --out folder of "
                          "`qanas demo` (e.g. runs/demo)")
    if results is None:
        path = run_dir / RESULTS_NAME
        if path.is_file():
            results = read_json(path, "the results of a qanas run")
        elif (run_dir / FRONT_NAME).is_file():
            results = search_results(run_dir)
        else:
            raise ReportError(f"{run_dir} has no {RESULTS_NAME} (a `qanas demo` run) nor "
                              f"{FRONT_NAME} (a `qanas search` run); pass the --out folder of "
                              "a finished run")
    if not isinstance(results, dict):
        raise ReportError(f"the results of {run_dir} must be a JSON object, got "
                          f"{type(results).__name__}")
    data = RunData(run_dir, results)
    if (run_dir / CONFIG_NAME).is_file():
        data.config = read_json(run_dir / CONFIG_NAME, "the run's resolved config")
    chosen = results.get("chosen") if isinstance(results.get("chosen"), dict) else {}
    project = resolve_path(run_dir, chosen.get("project"))
    if project is not None and (project / "compile.json").is_file():
        data.project = project
        data.compile_info = read_json(project / "compile.json", "the compiler's summary")
        if (project / "plan.json").is_file():
            data.plan = read_json(project / "plan.json", "the execution and memory plan")
    return data
