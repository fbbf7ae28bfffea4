"""Demo stage 2: NSGA-II over the trained supernet for the target, and the knee of its front."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qanas.demo.config import DemoConfig
from qanas.search.archive import EvalRecord

OBJECTIVES = ("miou", "latency", "sram")


@dataclass
class DemoSearch:
    """What the search stage leaves for the next stages."""

    result: Any
    evaluation: Any
    hw: Any
    knee: EvalRecord
    latency_source: str
    section: dict


def _row(record: EvalRecord, feasible: bool) -> dict:
    return {"arch": record.arch, "miou": record.miou, "miou_fp32": record.miou_fp32,
            "latency": {"value": record.latency, "unit": record.latency_unit,
                        "source": record.latency_source},
            "sram_bytes": record.sram_bytes, "flash_bytes": record.flash_bytes,
            "macs": record.macs, "feasible": bool(feasible)}


def search_front(scorer, config: DemoConfig, out: Path, checkpoint_sha256: str) -> DemoSearch:
    """pymoo NSGA-II (`qanas.search`) with the target's SRAM/flash budgets as hard constraints.

    Every evaluated subnet is scored on int8 mIoU by `scorer` and stored in
    ``out/search/archive.sqlite``; ``front.json``, ``front.csv`` and ``pareto.png`` are
    written beside it. The knee of the feasible front is the chosen subnet.
    """
    import numpy as np

    from qanas.cli.commands.search import SupernetEvaluator
    from qanas.search.algorithms import run_search
    from qanas.search.archive import EvalArchive, metric_set_key
    from qanas.search.hw import HardwareCostModel, target_budgets
    from qanas.search.lut_registry import latency_lut_model
    from qanas.search.problem import Budgets, SubnetEvaluation
    from qanas.search.report import write_front
    from qanas.search.select import knee_point
    from qanas.utils import progress
    from targets import get_target

    target = get_target(config.target)
    space = scorer.supernet.space
    num_classes = scorer.supernet.num_classes
    model, lut_path = latency_lut_model(space, target.name, tuple(config.image_size),
                                        num_classes)
    lut_path = None if lut_path is None else str(lut_path)
    hw = HardwareCostModel(space, target, tuple(config.image_size), num_classes,
                           latency_model=model)
    budgets = Budgets(**target_budgets(target))
    search_dir = out / "search"
    search_dir.mkdir(parents=True, exist_ok=True)
    metric_set = metric_set_key(checkpoint=checkpoint_sha256, dataset=config.dataset,
                                image_size=list(config.image_size), seed=config.seed,
                                latency_lut=lut_path)
    archive = EvalArchive(search_dir / "archive.sqlite")
    try:
        evaluation = SubnetEvaluation(space, hw, SupernetEvaluator(scorer), archive, metric_set,
                                      budgets, checkpoint_sha256, config.seed)
        bar = progress(total=config.budget, desc="NSGA-II search", unit="subnet")

        def report(done: int, front) -> None:
            bar.update(max(0, min(done, config.budget) - bar.n))
            best = max((r.miou for r in front), default=float("nan"))
            bar.set_postfix(front=len(front), best_miou=f"{best:.4f}")

        result = run_search("nsga2", evaluation, config.budget, config.seed, OBJECTIVES, report)
        bar.close()
        summary = {"algorithm": "nsga2", "target": target.name, "space": space.name,
                   "objectives": list(OBJECTIVES), "budget": config.budget,
                   "budgets": budgets.__dict__}
        files = write_front(search_dir, result, summary)
    finally:
        archive.close()
    knee = knee_point(result.front, evaluation, OBJECTIVES)
    feasible = {r.arch: bool(np.all(evaluation.constraints(r) <= 0)) for r in result.records}
    source = result.records[0].latency_source if result.records else "analytic"
    section = {
        "algo": "nsga2", "target": target.name, "budget": config.budget,
        "objectives": list(OBJECTIVES),
        "constraints": {"sram_bytes": budgets.sram_bytes, "flash_bytes": budgets.flash_bytes},
        "latency_model": {"source": source, "table": lut_path},
        "evaluated": [_row(r, feasible[r.arch]) for r in result.records],
        "front": [_row(r, True) for r in result.front],
        "chosen_arch": knee.arch,
        "selection": "knee: minimum equal-weight ASF over objectives normalised on the front",
        "scored": result.scored,
        "files": {k: str(v) for k, v in files.items()},
    }
    return DemoSearch(result, evaluation, hw, knee, source, section)
