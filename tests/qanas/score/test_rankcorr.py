"""Rank correlation math against scipy and hand-computed values on known data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from qanas.errors import ConfigError
from qanas.score.rankcorr import rank_correlation, top_k_overlap


def test_perfect_and_reversed_rankings():
    x = [0.1, 0.3, 0.2, 0.5, 0.4]
    same = rank_correlation(x, [2 * v + 1 for v in x], ks=(1, 2, 5))
    assert same.kendall_tau == pytest.approx(1.0) and same.spearman_rho == pytest.approx(1.0)
    assert same.top_k == {1: 1.0, 2: 1.0, 5: 1.0}
    rev = rank_correlation(x, [-v for v in x], ks=(2, 5))
    assert rev.kendall_tau == pytest.approx(-1.0) and rev.spearman_rho == pytest.approx(-1.0)
    assert rev.top_k == {2: 0.0, 5: 1.0}  # all five always overlap


def test_hand_computed_example():
    # ranks of truth: [1, 4, 2, 3]; proxy ranks [1, 2, 3, 4]:
    # pairs (6): discordant (2,3), (2,4) -> tau = (4 - 2) / 6 = 1/3
    # d = [0, -2, 1, 1] -> rho = 1 - 6 * 6 / (4 * 15) = 0.4
    proxy = [0.1, 0.2, 0.3, 0.4]
    truth = [0.1, 0.4, 0.2, 0.3]
    r = rank_correlation(proxy, truth, ks=(1, 2))
    assert r.kendall_tau == pytest.approx(1 / 3)
    assert r.spearman_rho == pytest.approx(0.4)
    # top-1: proxy picks index 3, truth index 1; top-2: {3, 2} vs {1, 3}
    assert r.top_k == {1: 0.0, 2: 0.5}


def test_matches_scipy_on_random_data_with_ties():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=40)
    proxy = np.round(truth + rng.normal(scale=0.7, size=40), 1)  # rounding makes ties
    r = rank_correlation(proxy, truth)
    ref_tau = stats.kendalltau(proxy, truth)
    ref_rho = stats.spearmanr(proxy, truth)
    assert r.kendall_tau == pytest.approx(ref_tau.statistic, abs=1e-12)
    assert r.kendall_p == pytest.approx(ref_tau.pvalue, abs=1e-12)
    assert r.spearman_rho == pytest.approx(ref_rho.statistic, abs=1e-12)
    assert r.spearman_p == pytest.approx(ref_rho.pvalue, abs=1e-12)
    assert r.n == 40


def test_nans_are_dropped_pairwise():
    r = rank_correlation([0.1, float("nan"), 0.3, 0.2], [1.0, 2.0, float("nan"), 1.5], ks=(1,))
    assert r.n == 2 and r.kendall_tau == pytest.approx(1.0)
    d = rank_correlation([1, 2], [1, 2]).to_dict()
    assert d["n"] == 2 and not any(isinstance(v, float) and math.isnan(v) for v in d.values())


def test_errors_teach():
    with pytest.raises(ConfigError, match="same length"):
        rank_correlation([1, 2, 3], [1, 2])
    with pytest.raises(ConfigError, match="at least 2"):
        rank_correlation([1.0, float("nan")], [1.0, 2.0])
    with pytest.raises(ConfigError, match=r"k must be in \[1, 3\]"):
        top_k_overlap([1, 2, 3], [1, 2, 3], 4)


def test_bootstrap_intervals_bracket_tau_and_are_seeded():
    rng = np.random.default_rng(0)
    truth = rng.normal(size=25)
    proxy = truth + rng.normal(scale=0.8, size=25)
    r = rank_correlation(proxy, truth, bootstrap=400, seed=3)
    low, high = r.kendall_ci
    assert -1 <= low < r.kendall_tau < high <= 1
    assert r.spearman_ci[0] < r.spearman_rho < r.spearman_ci[1]
    assert rank_correlation(proxy, truth, bootstrap=400, seed=3).kendall_ci == r.kendall_ci
    assert rank_correlation(proxy, truth).kendall_ci is None  # no resamples asked for
    fewer = rank_correlation(proxy[:8], truth[:8], bootstrap=400, seed=3).kendall_ci
    assert fewer[1] - fewer[0] > high - low  # fewer subnets, wider interval


def test_bootstrap_of_tied_scores_has_no_interval():
    d = rank_correlation([0.1, 0.2, 0.3, 0.4], [0.5] * 4, bootstrap=50).to_dict()
    assert d["kendall_tau"] is None and d["kendall_ci"] == [None, None]
