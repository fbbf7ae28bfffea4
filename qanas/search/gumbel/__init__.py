"""qanas.search.gumbel: SqueezeNAS-style differentiable search (``--algo gumbel``).

One module per step: `distribution` learns the per-decision distribution
(`GumbelConfig`, `ChoiceCosts` / `choice_costs`, `learn_distribution` →
`GumbelDistribution`) through the gates of `gates`; `sampling` draws and scores its
samples (`select_samples`, the ``gumbel`` search algorithm); `phase` is the learning
phase a search run starts with (`learn_for_search`, writing ``gumbel.json``).

Example:
    >>> from qanas.search.gumbel import GumbelConfig, choice_costs, learn_distribution
    >>> dist = learn_distribution(supernet, loader, costs, GumbelConfig(alpha=0.5))  # doctest: +SKIP
"""

from qanas.search.gumbel.distribution import (
    ChoiceCosts,
    GumbelConfig,
    GumbelDistribution,
    choice_costs,
    learn_distribution,
)
from qanas.search.gumbel.phase import LATENCY_SOURCES, GumbelPhase, latency_costs, learn_for_search
from qanas.search.gumbel.sampling import (
    SampleSelection,
    gumbel_sample_search,
    log_probability,
    prune,
    select_samples,
)

__all__ = [
    "LATENCY_SOURCES",
    "ChoiceCosts",
    "GumbelConfig",
    "GumbelDistribution",
    "GumbelPhase",
    "SampleSelection",
    "choice_costs",
    "gumbel_sample_search",
    "latency_costs",
    "learn_distribution",
    "learn_for_search",
    "log_probability",
    "prune",
    "select_samples",
]
