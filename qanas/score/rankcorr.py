"""Rank correlation between two scorings of the same subnets (supernet proxy vs standalone).

A weight-sharing supernet is only useful for search if it *ranks* subnets the way
standalone training does (FairNAS, Chu et al. 2019, §4.3; SPOS). The figures here:

* **Kendall τ-b** (`scipy.stats.kendalltau`, ties handled): the share of concordant
  minus discordant pairs;
* **Spearman ρ** (`scipy.stats.spearmanr`): Pearson correlation of the ranks;
* **top-k overlap**: |top-k by proxy ∩ top-k by truth| / k, for the k that matter
  to a search which keeps only the best few;
* **bootstrap 95 % intervals** of τ and ρ (`scipy.stats.bootstrap`, paired resampling
  of the subnets, percentile method, seeded), so that a τ from a few subnets is read
  with its uncertainty.

Higher is better for both scores (mIoU). NaN scores (an unscored subnet) are
dropped pairwise before anything is computed.

Example:
    >>> r = rank_correlation([0.1, 0.2, 0.3, 0.4], [0.15, 0.1, 0.35, 0.5], ks=(2,))
    >>> round(r.kendall_tau, 3), r.top_k[2]
    (0.667, 1.0)
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from qanas.errors import ConfigError


@dataclass(frozen=True)
class RankCorrelation:
    """Agreement of a proxy ranking with a reference ranking.

    Attributes:
        n: pairs used (after dropping NaNs).
        kendall_tau, kendall_p: Kendall τ-b and its two-sided p-value.
        spearman_rho, spearman_p: Spearman ρ and its two-sided p-value.
        top_k: k → overlap share in [0, 1] of the k best by proxy and by reference.
        kendall_ci, spearman_ci: bootstrap 95 % intervals (low, high), or None when not
            computed.
    """

    n: int
    kendall_tau: float
    kendall_p: float
    spearman_rho: float
    spearman_p: float
    top_k: dict[int, float] = field(default_factory=dict)
    kendall_ci: tuple[float, float] | None = None
    spearman_ci: tuple[float, float] | None = None

    def to_dict(self) -> dict:
        """JSON-friendly form (NaN becomes None, top-k keys become strings)."""
        out = asdict(self)
        out["top_k"] = {str(k): v for k, v in self.top_k.items()}
        for key in ("kendall_ci", "spearman_ci"):
            if out[key] is not None:
                out[key] = [None if math.isnan(v) else v for v in out[key]]
        return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in out.items()}


def top_k_overlap(proxy: Sequence[float], truth: Sequence[float], k: int) -> float:
    """|top-k of `proxy` ∩ top-k of `truth`| / k (higher scores are better).

    Ties are broken by position (a stable sort), identically for both lists.

    Raises:
        ConfigError: `k` outside [1, len(proxy)] or lists of different lengths.
    """
    proxy, truth = np.asarray(proxy, dtype=float), np.asarray(truth, dtype=float)
    if proxy.shape != truth.shape:
        raise ConfigError(f"top-k overlap needs two lists of the same length, got "
                          f"{proxy.shape[0]} and {truth.shape[0]}")
    if not 1 <= int(k) <= len(proxy):
        raise ConfigError(f"top-k: k must be in [1, {len(proxy)}] (the number of subnets), got {k}")
    best_proxy = set(np.argsort(-proxy, kind="stable")[:k].tolist())
    best_truth = set(np.argsort(-truth, kind="stable")[:k].tolist())
    return len(best_proxy & best_truth) / k


def rank_correlation(proxy: Sequence[float], truth: Sequence[float],
                     ks: Sequence[int] = (3, 5), bootstrap: int = 0,
                     seed: int = 0) -> RankCorrelation:
    """Kendall τ-b, Spearman ρ (scipy.stats) and top-k overlaps of `proxy` vs `truth`.

    Args:
        proxy: the cheap scores (supernet-inherited quantized mIoU, or a cost for a
            trivial ranker), one per subnet; higher ranks higher.
        truth: the reference scores (standalone-trained quantized mIoU), same order.
        ks: top-k sizes; those larger than the number of pairs are skipped.
        bootstrap: resamples for the 95 % intervals of τ and ρ (0: no intervals).
        seed: seed of the resampling.

    Raises:
        ConfigError: lists of different lengths, or fewer than 2 pairs without NaN.
    """
    from scipy import stats

    p, t = np.asarray(proxy, dtype=float), np.asarray(truth, dtype=float)
    if p.shape != t.shape or p.ndim != 1:
        raise ConfigError(f"rank correlation needs two flat lists of the same length, got shapes "
                          f"{p.shape} and {t.shape}")
    keep = ~(np.isnan(p) | np.isnan(t))
    p, t = p[keep], t[keep]
    if len(p) < 2:
        raise ConfigError(f"rank correlation needs at least 2 subnets scored both ways, got "
                          f"{len(p)}; train and score more subnets (--n)")
    tau = stats.kendalltau(p, t)
    rho = stats.spearmanr(p, t)
    top = {int(k): top_k_overlap(p, t, int(k)) for k in ks if 1 <= int(k) <= len(p)}
    cis = {}
    if bootstrap > 0:
        cis = {"kendall_ci": bootstrap_interval(p, t, stats.kendalltau, bootstrap, seed),
               "spearman_ci": bootstrap_interval(p, t, stats.spearmanr, bootstrap, seed)}
    return RankCorrelation(len(p), float(tau.statistic), float(tau.pvalue),
                           float(rho.statistic), float(rho.pvalue), top, **cis)


def bootstrap_interval(proxy: np.ndarray, truth: np.ndarray, correlation, resamples: int,
                       seed: int) -> tuple[float, float]:
    """Percentile bootstrap 95 % interval of ``correlation(proxy, truth).statistic``.

    The subnets are resampled with replacement, pairs kept together
    (`scipy.stats.bootstrap` with ``paired=True``). A resample whose statistic is
    undefined (all scores tied) is left out of the percentiles; (NaN, NaN) when every
    one is.
    """
    from scipy import stats

    def statistic(a, b):
        return correlation(a, b).statistic

    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tied resamples: scipy warns once per resample
        result = stats.bootstrap((proxy, truth), statistic, paired=True, vectorized=False,
                                 n_resamples=int(resamples), method="percentile",
                                 random_state=np.random.default_rng(seed))
    distribution = result.bootstrap_distribution[~np.isnan(result.bootstrap_distribution)]
    if distribution.size == 0:
        return float("nan"), float("nan")
    low, high = np.percentile(distribution, [2.5, 97.5])
    return float(low), float(high)


def _pareto_order(archs: Sequence[str], miou: Sequence[float],
                  latency: Sequence[float]) -> list[str]:
    """Distinct `archs` sorted by non-dominated layer of (max mIoU, min latency), then latency.

    Layer 0 is the Pareto front (pymoo's `NonDominatedSorting`); unscored (NaN)
    candidates come after every layer.
    """
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

    index = {a: i for i, a in enumerate(archs)}
    F = np.stack([-np.asarray(miou, dtype=float), np.asarray(latency, dtype=float)], axis=1)
    scored = np.flatnonzero(~np.isnan(F).any(axis=1))
    layer = np.full(len(archs), len(archs), dtype=int)
    if len(scored):
        for rank, members in enumerate(NonDominatedSorting().do(F[scored])):
            layer[scored[members]] = rank
    return [archs[i] for i in sorted((index[a] for a in dict.fromkeys(archs)),
                                     key=lambda i: (layer[i], latency[i], archs[i]))]


def pareto_split_selection(archs: Sequence[str], miou: Sequence[float],
                           latency: Sequence[float], n_front: int, n_worse: int,
                           always: Sequence[str] = ()) -> list[str]:
    """The `always` architectures, `n_front` Pareto-optimal ones and `n_worse` Pareto-worse ones.

    The NXP study's choice: candidates are ordered by non-dominated layer of (max mIoU,
    min latency), then by latency. The first `n_front` of that order are the front (and,
    when the front holds fewer, the next layers: the nearest to optimal); the last
    `n_worse` are the most dominated. Architectures in `always` (e.g. the seed network)
    come first and are not counted in either group.

    Raises:
        ConfigError: fewer distinct candidates than the architectures asked for.
    """
    order = _pareto_order(archs, miou, latency)
    chosen = [a for a in dict.fromkeys(always) if a in order]
    rest = [a for a in order if a not in chosen]
    if n_front < 0 or n_worse < 0 or n_front + n_worse > len(rest):
        raise ConfigError(f"cannot pick {n_front} Pareto-optimal and {n_worse} Pareto-worse "
                          f"subnets from {len(rest)} candidates; raise --pool")
    return chosen + rest[:n_front] + rest[len(rest) - n_worse:]


def spread_selection(archs: Sequence[str], miou: Sequence[float], latency: Sequence[float],
                     n: int, always: Sequence[str] = ()) -> list[str]:
    """`n` architectures spread over the Pareto layers of (max mIoU, min latency).

    The candidates are sorted by non-dominated layer (pymoo's `NonDominatedSorting`;
    layer 0 is the Pareto front), then by latency inside a layer, and `n` of them are
    taken at evenly spaced positions of that order, so the pick holds front members
    and Pareto-worse subnets from fast to slow. Architectures in `always` (e.g. the
    seed network) are included first.

    Raises:
        ConfigError: `n` larger than the number of distinct candidates.
    """
    unique = dict.fromkeys(archs)
    if n > len(unique):
        raise ConfigError(f"cannot pick {n} subnets from {len(unique)} candidates; lower --n "
                          "or raise --pool")
    chosen = [a for a in dict.fromkeys(always) if a in unique][:n]
    order = _pareto_order(archs, miou, latency)
    rest = [a for a in order if a not in chosen]
    need = n - len(chosen)
    if need > 0:
        positions = np.unique(np.round(np.linspace(0, len(rest) - 1, need)).astype(int))
        chosen += [rest[i] for i in positions]
        for a in rest:  # rounding collisions: fill in order
            if len(chosen) >= n:
                break
            if a not in chosen:
                chosen.append(a)
    return chosen


def plot_rank_scatter(path, truth: Sequence[float], proxies: dict[str, Sequence[float]],
                      title: str = ""):
    """Scatter of proxy (supernet) vs standalone quantized mIoU, one series per supernet."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    from qanas.utils.io import atomic_write_bytes

    fig, ax = plt.subplots(figsize=(5.2, 4.6), dpi=120)
    for (label, values), marker in zip(proxies.items(), "os^v", strict=False):
        ax.scatter(truth, values, marker=marker, s=28, alpha=0.8, label=label)
    ax.set_xlabel("standalone int8 mIoU (QAT)")
    ax.set_ylabel("supernet-inherited int8 mIoU")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="best", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())
