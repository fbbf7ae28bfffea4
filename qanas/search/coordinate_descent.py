"""Coordinate descent (Efficient-TopFormer's search): one decision at a time, the others held.

From a start subnet (the space's seed), a *sweep* visits every decision in a seeded
order; for the decision at hand it evaluates every other option with all other
decisions held, and moves to the best one if it beats the current subnet. Sweeps
repeat until one changes nothing (a coordinate-wise optimum) or the budget of
distinct subnets is spent.

What "best" means is one number per record, `utility`:

* **constrained** by the target's budgets (`SubnetEvaluation.budgets`): a subnet over
  a budget is worse than every feasible one, and among infeasible subnets the one with
  the smaller total relative violation is better (so a start over budget descends into
  the feasible region);
* **scalarized** over the other objectives: ``miou - λ · mean_i(cost_i / cost_i(start))``
  for the cost objectives among `objectives` (latency, sram, flash), normalised by the
  start subnet's costs.

One descent per trade-off λ in `tradeoffs` (default 0, 0.05, 0.2, 0.5 — from "best
mIoU within the budgets" towards cheaper subnets), each starting where the previous
ended, shares the budget; the front is the non-dominated set of everything evaluated,
as for the other algorithms. Every evaluation goes through `SubnetEvaluation`, so it is
recorded in the archive; the run is deterministic for a seed, so a resumed run replays
the same moves while the archive answers the subnets already scored.

Spaces whose decisions can be inert (blocks beyond a stage's depth) may define
``canonical(cfg)``; moves that leave the canonical network unchanged are skipped
rather than evaluated twice.

Example:
    >>> result = coordinate_descent_search(evaluation, budget=200, seed=0)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from qanas.errors import ConfigError
from qanas.search.archive import EvalRecord
from qanas.search.problem import DEFAULT_OBJECTIVES, OBJECTIVES, SubnetEvaluation
from qanas.search.result import pareto_front, search_result
from qanas.space.base import SubnetConfig

DEFAULT_TRADEOFFS = (0.0, 0.05, 0.2, 0.5)
COST_OBJECTIVES = ("latency", "sram", "flash")
INFEASIBLE = -1e3
"""Utility offset of an over-budget subnet: below every feasible one (mIoU is in [0, 1])."""


class Utility:
    """The scalar a descent maximises (see the module docstring).

    Args:
        evaluation: gives the budgets.
        objectives: the run's objectives; the cost ones among them are scalarized.
        reference: the start record whose costs normalise the cost terms.
        tradeoff: λ, the weight of the mean normalised cost.
    """

    def __init__(self, evaluation: SubnetEvaluation, objectives: Sequence[str],
                 reference: EvalRecord, tradeoff: float):
        self.evaluation, self.tradeoff = evaluation, float(tradeoff)
        self.costs = [n for n in objectives if n in COST_OBJECTIVES]
        self.scale = {n: max(OBJECTIVES[n](reference), 1e-12) for n in self.costs}

    def __call__(self, record: EvalRecord) -> float:
        """Higher is better."""
        violations = self.evaluation.constraints(record)
        if np.any(violations > 0):
            limits = np.array([lim for _, lim in self.evaluation.budgets.active()], dtype=float)
            return INFEASIBLE - float(np.sum(np.maximum(violations, 0) / np.maximum(limits, 1e-12)))
        cost = np.mean([OBJECTIVES[n](record) / self.scale[n] for n in self.costs]) if self.costs else 0.0
        return (record.miou or 0.0) - self.tradeoff * float(cost)


def _canonical(space, cfg: SubnetConfig) -> SubnetConfig:
    canonical = getattr(space, "canonical", None)
    return canonical(cfg) if callable(canonical) else cfg


def _neighbours(space, current: SubnetConfig, decision: int) -> list[SubnetConfig]:
    """`current` with decision `decision` set to each other option (valid, distinct networks)."""
    seen = {_canonical(space, current).to_str()}
    out = []
    vector = space.encode(current)  # the space's own indices (a wrapped space has more)
    for option in range(space.decisions[decision].size):
        if option == vector[decision]:
            continue
        choices = vector.copy()
        choices[decision] = option
        cfg = _canonical(space, space.decode(choices))
        if cfg.to_str() not in seen:
            seen.add(cfg.to_str())
            out.append(cfg)
    return out


def descend(evaluation: SubnetEvaluation, start: SubnetConfig, utility: Utility, budget: int,
            rng: np.random.Generator, progress=None) -> tuple[SubnetConfig, int]:
    """One coordinate descent from `start`; stops at a sweep without a move or at the budget.

    Returns:
        The final subnet and the number of sweeps run.
    """
    from qanas.search.sharding import evaluate_many

    space = evaluation.space
    current = _canonical(space, start)
    known = evaluation.seen.get(current.to_str())
    best = utility(known if known is not None else evaluate_many(evaluation, [current])[0])
    sweeps = 0
    while len(evaluation.seen) < budget:
        sweeps += 1
        moved = False
        for decision in rng.permutation(len(space.decisions)):
            left = budget - len(evaluation.seen)
            if left <= 0:
                break
            candidates = _neighbours(space, current, int(decision))
            fresh = [c for c in candidates if c.to_str() not in evaluation.seen][:left]
            known = [c for c in candidates if c.to_str() in evaluation.seen]
            records = evaluate_many(evaluation, fresh) + [evaluation.seen[c.to_str()] for c in known]
            if progress is not None and fresh:
                progress(len(evaluation.seen), records)
            for cfg, record in zip(fresh + known, records, strict=True):
                value = utility(record)
                if value > best:
                    best, current, moved = value, cfg, True
        if not moved:
            break
    return current, sweeps


def coordinate_descent_search(evaluation: SubnetEvaluation, budget: int, seed: int,
                              objectives: Sequence[str] = DEFAULT_OBJECTIVES,
                              progress=None, tradeoffs: Sequence[float] = DEFAULT_TRADEOFFS,
                              start: SubnetConfig | None = None):
    """Coordinate descents (one per trade-off) spending at most `budget` distinct subnets.

    Args:
        evaluation: archive-backed evaluation (its budgets constrain every descent).
        budget: distinct subnets to evaluate (archive hits count: a resume replays).
        seed: seeds the order in which each sweep visits the decisions.
        objectives: the front's objectives; the cost ones are scalarized.
        progress: called with (subnets evaluated, current front).
        tradeoffs: λ of each descent, in order (each starts where the previous ended).
        start: the first descent's start (default: the space's seed subnet).

    Returns:
        A `SearchResult` named "coordinate-descent".

    Raises:
        ConfigError: a budget < 1, no trade-offs, or a negative trade-off.
    """
    if int(budget) < 1:
        raise ConfigError(f"--budget must be a positive number of subnets, got {budget}")
    if not tradeoffs or any(float(t) < 0 for t in tradeoffs):
        raise ConfigError(f"coordinate descent needs one or more trade-offs >= 0, got {tradeoffs!r}")
    space = evaluation.space
    rng = np.random.default_rng(seed)
    evaluation.seen.clear()
    current = start if start is not None else space.seed_config()
    reference = evaluation(_canonical(space, current))

    def report(done: int, _records) -> None:
        if progress is not None:
            progress(done, pareto_front(list(evaluation.seen.values()), evaluation, objectives))

    for tradeoff in tradeoffs:
        if len(evaluation.seen) >= budget:
            break
        utility = Utility(evaluation, objectives, reference, tradeoff)
        current, _ = descend(evaluation, current, utility, int(budget), rng, report)
    return search_result("coordinate-descent", objectives, list(evaluation.seen.values()), evaluation)


__all__ = ["DEFAULT_TRADEOFFS", "Utility", "coordinate_descent_search", "descend"]
