"""The search problem: objectives, hard budgets, archive-backed evaluation, and pymoo glue.

`SubnetEvaluation` turns a `SubnetConfig` into an `EvalRecord`: it first asks the
archive (a hit costs nothing), otherwise computes the hardware profile, scores
the subnet with the injected `Evaluator` (only when the profile fits the hard
budgets: an over-budget subnet is infeasible whatever its accuracy, so it is not
worth a scoring run) and stores the record in one transaction.

`SubnetProblem` is a pymoo `ElementwiseProblem` over the integer encoding of the
space (``xl = 0``, ``xu = space.upper_bounds``): ``out["F"]`` holds the chosen
objectives, all minimized (``miou`` enters as ``-miou``), and ``out["G"]`` one
``value - budget <= 0`` row per hard budget. `SpaceRepair` maps every candidate
vector through `SearchSpace.decode` so the algorithm only ever sees valid subnets.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from pymoo.core.problem import ElementwiseProblem
from pymoo.core.repair import Repair

from qanas.cost.hardware import CostModel
from qanas.errors import ConfigError
from qanas.search.archive import EvalArchive, EvalRecord
from qanas.space.base import SearchSpace, SubnetConfig
from qanas.utils.io import versions

OBJECTIVES: dict[str, Callable[[EvalRecord], float]] = {
    "miou": lambda r: -(r.miou if r.miou is not None else 0.0),
    "latency": lambda r: float(r.latency),
    "sram": lambda r: float(r.sram_bytes),
    "flash": lambda r: float(r.flash_bytes),
}
"""Objective name → minimized value of a record (unscored infeasible subnets count mIoU 0)."""

DEFAULT_OBJECTIVES = ("miou", "latency", "sram")


def parse_objectives(text: str | Sequence[str]) -> tuple[str, ...]:
    """Validates a comma-separated list (or sequence) of objective names."""
    names = tuple(n.strip() for n in (text.split(",") if isinstance(text, str) else text) if n.strip())
    unknown = [n for n in names if n not in OBJECTIVES]
    if unknown or not names or len(set(names)) != len(names):
        raise ConfigError(f"objectives {names!r}: choose distinct names from "
                          f"{', '.join(OBJECTIVES)}, e.g. 'miou,latency,sram'")
    return names


@dataclass(frozen=True)
class Budgets:
    """Hard constraints; None means unbounded.

    Attributes:
        sram_bytes: activation arena budget (the target's SRAM).
        flash_bytes: weights budget (the region the weights link into: flash, or PSRAM/DDR).
        latency: latency budget, in the latency model's unit.
    """

    sram_bytes: int | None = None
    flash_bytes: int | None = None
    latency: float | None = None

    def active(self) -> list[tuple[str, float]]:
        """(record field, limit) of each bounded budget."""
        return [(k, float(v)) for k, v in (("sram_bytes", self.sram_bytes),
                                            ("flash_bytes", self.flash_bytes),
                                            ("latency", self.latency)) if v is not None]

    def violations(self, values: dict[str, float]) -> np.ndarray:
        """``value - limit`` per active budget (pymoo's ``G``: <= 0 is feasible)."""
        return np.array([float(values[k]) - lim for k, lim in self.active()], dtype=float)

    def fits(self, values: dict[str, float]) -> bool:
        """True when every active budget holds."""
        return bool(np.all(self.violations(values) <= 0))


@runtime_checkable
class Evaluator(Protocol):
    """Scores one subnet: returns at least ``miou`` (quantized) and ``miou_fp32``."""

    def score(self, cfg: SubnetConfig) -> dict:
        """Metrics of `cfg`; extra keys are kept in the record's ``extra``."""
        ...


class SubnetEvaluation:
    """Archive-backed evaluation of subnets on one target under one metric set.

    Args:
        space, hw: the search space and its hardware cost model (fixes the target).
        evaluator: the scorer.
        archive: where records are read and written.
        metric_set: key of the evaluation protocol (`qanas.search.archive.metric_set_key`).
        budgets: hard constraints; over-budget subnets are recorded unscored.
        checkpoint_sha256, seed: provenance written into every new record.
    """

    def __init__(self, space: SearchSpace, hw: CostModel, evaluator: Evaluator,
                 archive: EvalArchive, metric_set: str, budgets: Budgets = Budgets(),
                 checkpoint_sha256: str = "", seed: int | None = None):
        self.space, self.hw, self.evaluator, self.archive = space, hw, evaluator, archive
        self.metric_set, self.budgets = metric_set, budgets
        self.checkpoint_sha256, self.seed = checkpoint_sha256, seed
        self._versions = versions()
        self.scored = 0
        self.cache_hits = 0
        self.seen: dict[str, EvalRecord] = {}

    @property
    def target(self) -> str:
        """The target name."""
        return self.hw.target.name

    def __call__(self, cfg: SubnetConfig) -> EvalRecord:
        """The record of `cfg` (from the archive, or evaluated and stored)."""
        arch = cfg.to_str()
        record = self.archive.get(arch, self.target, self.metric_set)
        if record is not None and not self.needs_score(record):
            self.cache_hits += 1
        else:
            record = self.archive.put(self.compute(cfg))
        self.seen[arch] = record
        return record

    def needs_score(self, record: EvalRecord) -> bool:
        """An archived row left unscored (over an earlier, tighter budget) that fits the
        budgets of this evaluation: it is evaluated again rather than counted as mIoU 0."""
        return record.miou is None and self.budgets.fits(
            {"sram_bytes": record.sram_bytes, "flash_bytes": record.flash_bytes,
             "latency": record.latency})

    def compute(self, cfg: SubnetConfig) -> EvalRecord:
        """Evaluates `cfg` without touching the archive (profile; scores if within budget).

        `qanas.search.sharding` calls it on every rank and stores the records on rank 0.
        """
        prof = self.hw.profile(cfg)
        costs = {"sram_bytes": prof.sram_bytes, "flash_bytes": prof.flash_bytes,
                 "latency": prof.latency.value}
        scores: dict = {}
        if self.budgets.fits(costs):
            scores = dict(self.evaluator.score(cfg))
            missing = {"miou", "miou_fp32"} - set(scores)
            if missing:
                raise ConfigError(f"the evaluator returned no {sorted(missing)} for {cfg}")
            self.scored += 1
        miou, miou_fp32 = scores.pop("miou", None), scores.pop("miou_fp32", None)
        for key in ("arch", "macs", "params"):
            scores.pop(key, None)
        record = EvalRecord(
            arch=cfg.to_str(), target=self.target, metric_set=self.metric_set,
            miou=None if miou is None else float(miou),
            miou_fp32=None if miou_fp32 is None else float(miou_fp32),
            macs=prof.macs, params=prof.params, flash_bytes=prof.flash_bytes,
            sram_bytes=prof.sram_bytes, latency=prof.latency.value,
            latency_unit=prof.latency.unit, latency_source=prof.latency.source,
            checkpoint_sha256=self.checkpoint_sha256, seed=self.seed,
            versions=self._versions, extra=_plain(scores))
        return record

    def objectives(self, record: EvalRecord, names: Sequence[str]) -> np.ndarray:
        """The minimized objective vector of `record`."""
        return np.array([OBJECTIVES[n](record) for n in names], dtype=float)

    def constraints(self, record: EvalRecord) -> np.ndarray:
        """pymoo's ``G`` row of `record`."""
        return self.budgets.violations({"sram_bytes": record.sram_bytes,
                                        "flash_bytes": record.flash_bytes,
                                        "latency": record.latency})


def _plain(obj):
    """JSON-safe copy (tuples → lists, NaN → None, numpy scalars → Python)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        obj = obj.item()
    if isinstance(obj, float) and obj != obj:
        return None
    return obj


class SpaceRepair(Repair):
    """pymoo repair: every row becomes the encoding of `space.decode(row)` (a valid subnet)."""

    def __init__(self, space: SearchSpace):
        super().__init__()
        self.space = space

    def _do(self, problem, X, **kwargs):
        return np.stack([self.space.encode(self.space.decode(x)) for x in X]) if len(X) else X


class SubnetProblem(ElementwiseProblem):
    """pymoo problem over the integer encoding of a space (see the module docstring)."""

    def __init__(self, evaluation: SubnetEvaluation, objectives: Sequence[str]):
        from qanas.distributed import current
        from qanas.search.sharding import ShardedRunner

        self.evaluation = evaluation
        self.objective_names = parse_objectives(objectives)
        space = evaluation.space
        # Under torchrun a population is scored as one batch shared by all ranks.
        runner = {"elementwise_runner": ShardedRunner(self)} if current().is_distributed else {}
        super().__init__(n_var=len(space.decisions), n_obj=len(self.objective_names),
                         n_ieq_constr=len(evaluation.budgets.active()), xl=0,
                         xu=space.upper_bounds, vtype=int, **runner)

    def _evaluate(self, x, out, *args, **kwargs):
        record = self.evaluation(self.evaluation.space.decode(x))
        out["F"] = self.evaluation.objectives(record, self.objective_names)
        if self.n_ieq_constr:
            out["G"] = self.evaluation.constraints(record)
