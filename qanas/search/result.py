"""What every search algorithm returns: `SearchResult`, and the Pareto front it is built on."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

from qanas.search.archive import EvalRecord
from qanas.search.problem import SubnetEvaluation

Progress = Callable[[int, list[EvalRecord]], None]
"""Called after each evaluation with (subnets evaluated so far, current front)."""


@dataclass(frozen=True)
class SearchResult:
    """What a search found.

    Attributes:
        algorithm: "nsga2", "random" or "gumbel".
        objectives: objective names (all minimized; miou as -miou).
        records: every subnet the run evaluated, in evaluation order.
        front: the feasible non-dominated records, best quantized mIoU first.
        scored: subnets scored by the evaluator in this run (archive hits excluded).
        cache_hits: subnets answered by the archive.
    """

    algorithm: str
    objectives: tuple[str, ...]
    records: tuple[EvalRecord, ...]
    front: tuple[EvalRecord, ...]
    scored: int
    cache_hits: int

    def front_matrix(self) -> np.ndarray:
        """The front's minimized objective vectors, one row per record."""
        from qanas.search.problem import OBJECTIVES

        return np.array([[OBJECTIVES[n](r) for n in self.objectives] for r in self.front],
                        dtype=float).reshape(len(self.front), len(self.objectives))


def pareto_front(records: Sequence[EvalRecord], evaluation: SubnetEvaluation,
                 objectives: Sequence[str]) -> list[EvalRecord]:
    """Feasible, scored, non-dominated records (duplicates of an arch kept once)."""
    unique = {r.arch: r for r in records}
    feasible = [r for r in unique.values()
                if r.miou is not None and np.all(evaluation.constraints(r) <= 0)]
    if not feasible:
        return []
    F = np.stack([evaluation.objectives(r, objectives) for r in feasible])
    front = NonDominatedSorting().do(F, only_non_dominated_front=True)
    chosen = [feasible[i] for i in front]
    return sorted(chosen, key=lambda r: (-(r.miou or 0.0), r.arch))


def search_result(name: str, objectives, records: list[EvalRecord],
            evaluation: SubnetEvaluation) -> SearchResult:
    """The `SearchResult` of algorithm `name` over `records`: their front and the evaluation's
    counts of scored subnets and archive hits."""
    return SearchResult(name, tuple(objectives), tuple(records),
                        tuple(pareto_front(records, evaluation, objectives)),
                        evaluation.scored, evaluation.cache_hits)
