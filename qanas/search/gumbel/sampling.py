"""Sampling the distribution learned by `qanas.search.gumbel.distribution` and scoring the samples.

The learned per-decision distribution is pruned (`prune`: options below 0.5 %
are never drawn), ``samples`` subnets are drawn from it with a seeded
`np.random.Generator` and repaired by the space, and the distinct ones, most
probable first (Σ log p), are scored through the same `SubnetEvaluation` and
`pareto_front` as the other algorithms, at most ``budget`` of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from qanas.errors import ConfigError
from qanas.search.result import pareto_front, search_result
from qanas.space.base import SubnetConfig

if TYPE_CHECKING:  # pragma: no cover
    from qanas.search.gumbel.distribution import GumbelDistribution


def prune(probabilities: Sequence[float], below: float) -> tuple[float, ...]:
    """Zeroes options with probability < `below` and renormalizes (the most likely one is kept)."""
    p = np.asarray(probabilities, dtype=float)
    keep = (p >= below) | (np.arange(len(p)) == int(np.argmax(p)))
    p = np.where(keep, p, 0.0)
    return tuple(float(v) for v in p / p.sum())


# -- sampling and scoring -----------------------------------------------------------------------
@dataclass(frozen=True)
class SampleSelection:
    """The subnets drawn from a distribution and those chosen for scoring.

    Attributes:
        drawn: number of samples drawn.
        distinct: distinct subnets among them (after the space's repair).
        counts: arch → times drawn.
        selected: the subnets to score, most probable first (at most the budget).
    """

    drawn: int
    distinct: int
    counts: dict[str, int]
    selected: tuple[SubnetConfig, ...]


def log_probability(dist: GumbelDistribution, cfg: SubnetConfig) -> float:
    """Σ_j log p_j(choice_j) under the pruned distribution (−inf for a pruned choice)."""
    with np.errstate(divide="ignore"):
        return float(sum(np.log(dist.probabilities[j][c]) for j, c in enumerate(cfg.choices)))


def select_samples(dist: GumbelDistribution, budget: int, seed: int) -> SampleSelection:
    """Draws ``dist.config.samples`` subnets (seeded) and keeps the `budget` most probable distinct ones.

    Ties in probability keep the order of first draw.
    """
    from qanas.space import get_space

    if int(budget) < 1:
        raise ConfigError(f"--budget must be a positive number of subnets, got {budget}")
    space = get_space(dist.space)
    rng = np.random.default_rng(seed)
    counts: dict[str, int] = {}
    configs: dict[str, SubnetConfig] = {}
    for _ in range(dist.config.samples):
        vec = [int(rng.choice(len(p), p=p)) for p in dist.probabilities]
        cfg = space.decode(vec)
        key = cfg.to_str()
        counts[key] = counts.get(key, 0) + 1
        configs.setdefault(key, cfg)
    order = sorted(configs, key=lambda k: -log_probability(dist, configs[k]))  # stable
    selected = tuple(configs[k] for k in order[:int(budget)])
    return SampleSelection(dist.config.samples, len(configs), counts, selected)


def gumbel_sample_search(evaluation, dist: GumbelDistribution, budget: int, seed: int,
                         objectives: Sequence[str], progress=None):
    """Scores the selected samples through `evaluation` and returns a `SearchResult`."""
    if dist.space != evaluation.space.name:
        raise ConfigError(f"the distribution was learned on {dist.space!r}, the evaluation is "
                          f"over {evaluation.space.name!r}")
    selection = select_samples(dist, budget, seed)
    records = []
    for cfg in selection.selected:
        records.append(evaluation(cfg))
        if progress is not None:
            progress(len(records), pareto_front(records, evaluation, objectives))
    return search_result("gumbel", objectives, records, evaluation)
