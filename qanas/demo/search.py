"""Demo stage 2: `qanas.search.run` (NSGA-II) over the trained supernet, and its knee."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qanas.demo.config import DemoConfig
from qanas.search.archive import EvalRecord

OBJECTIVES = ("miou", "latency", "sram")
MIXED_OBJECTIVES = OBJECTIVES + ("flash",)
"""With ``--bits w4w8`` weight flash is an objective too: 4-bit layers trade mIoU for it."""


def demo_objectives(bits: str) -> tuple[str, ...]:
    """The search objectives of a demo searching `bits` (``w8`` or ``w4w8``)."""
    return OBJECTIVES if bits == "w8" else MIXED_OBJECTIVES


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


def search_front(scorer, config: DemoConfig, out: Path, checkpoint: Path,
                 force: bool = False, objectives: tuple[str, ...] | None = None) -> DemoSearch:
    """`qanas.search.run` (NSGA-II) over the trained supernet, as `qanas search` runs it.

    Every evaluated subnet is scored on int8 mIoU by `scorer` (the trained supernet,
    already in memory) under the target's SRAM/flash budgets and stored in
    ``out/search/archive.sqlite``; ``front.json``, ``front.csv``, ``pareto.png`` and
    ``config.json`` are written beside it. The knee of the feasible front is the
    chosen subnet. `force` discards the archive of an earlier demo in `out`. With
    ``config.bits == "w4w8"`` each searchable conv's weight bits are decisions too
    (`qanas.search.bits`). `objectives` defaults to `demo_objectives(config.bits)`.

    Raises:
        QanasError: no subnet within the target's budgets was found.
    """
    import numpy as np

    from qanas.errors import QanasError
    from qanas.search.config import SearchConfig
    from qanas.search.job import run
    from qanas.search.scorer_setup import ScorerSetup, SupernetEvaluator
    from qanas.utils.io import file_sha256

    image_size = tuple(config.image_size)
    objectives = tuple(objectives or demo_objectives(config.bits))
    sha = file_sha256(checkpoint)
    settings = {"checkpoint": sha, "dataset": config.dataset, "image_size": list(image_size),
                "val_images": config.val_images, "seed": config.seed}
    setup = ScorerSetup(SupernetEvaluator(scorer), scorer.supernet.space,
                        scorer.supernet.num_classes, image_size, sha, settings)
    done = run(SearchConfig(supernet=str(checkpoint), target=config.target, algo="nsga2",
                            budget=config.budget, out=str(out / "search"),
                            objectives=objectives, seed=config.seed, image_size=image_size,
                            data_root=config.data_root, force=force, bits=config.bits,
                            optimise=config.optimise), scorer=setup)
    if done.knee is None:
        raise QanasError(f"the demo search found no subnet of {config.space} within the SRAM "
                         f"and flash of {config.target}; choose a larger target or a smaller "
                         "--image-size")
    result, evaluation, budgets = done.result, done.evaluation, done.evaluation.budgets
    feasible = {r.arch: bool(np.all(evaluation.constraints(r) <= 0)) for r in result.records}
    source = result.records[0].latency_source if result.records else "analytic"
    section = {
        "algo": "nsga2", "target": done.summary["target"], "budget": config.budget,
        "optimise": config.optimise,
        "objectives": list(objectives), "bits": config.bits,
        "constraints": {"sram_bytes": budgets.sram_bytes, "flash_bytes": budgets.flash_bytes},
        "latency_model": {"source": source, "table": done.summary["latency_lut"]},
        "evaluated": [_row(r, feasible[r.arch]) for r in result.records],
        "front": [_row(r, True) for r in result.front],
        "chosen_arch": done.knee.arch,
        "selection": "knee: minimum equal-weight ASF over objectives normalised on the front",
        "scored": result.scored,
        "files": {k: str(v) for k, v in done.files.items() if k not in ("archive", "config")},
    }
    return DemoSearch(result, evaluation, evaluation.hw, done.knee, source, section)
