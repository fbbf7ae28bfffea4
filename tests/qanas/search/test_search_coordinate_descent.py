"""`--algo coordinate-descent`: determinism, archive and resume, budgets, coordinate-wise optimum.

The costs and scores come from seeded per-option tables (`TableHardware`,
`TableScorer`), so a descent over thousands of subnets takes a second and the
coordinate-wise optimum can be checked against every neighbour.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from qanas.cost.hardware import HardwareProfile, Latency
from qanas.errors import ConfigError
from qanas.search.algorithms import ALGORITHMS, run_search
from qanas.search.archive import EvalArchive
from qanas.search.coordinate_descent import Utility, _neighbours, coordinate_descent_search
from qanas.search.problem import Budgets, SubnetEvaluation
from qanas.space import get_space

SPACE = "squeezenas-small"


class TableHardware:
    """Test-only cost model: per-option latency and SRAM tables drawn from a fixed seed."""

    target = SimpleNamespace(name="host")

    def __init__(self, space):
        rng = np.random.default_rng(7)
        self.latency = [rng.uniform(1, 10, d.size) for d in space.decisions]
        self.sram = [rng.uniform(1, 10, d.size) for d in space.decisions]

    def profile(self, cfg) -> HardwareProfile:
        latency = sum(t[c] for t, c in zip(self.latency, cfg.choices, strict=True))
        sram = int(1000 * max(t[c] for t, c in zip(self.sram, cfg.choices, strict=True)))
        return HardwareProfile(int(latency * 1e6), 1000, 1000, sram, sram,
                               Latency(float(latency), "cycles", "table"))


class FakeScorer:
    """Test-only scorer: a seeded per-option gain table plus one interaction, in [0, 1]."""

    def __init__(self, space):
        rng = np.random.default_rng(11)
        self.gain = [rng.uniform(0, 1, d.size) for d in space.decisions]
        self.calls: list[str] = []

    def score(self, cfg):
        self.calls.append(cfg.to_str())
        total = sum(g[c] for g, c in zip(self.gain, cfg.choices, strict=True))
        total += 0.5 * (cfg.choices[0] == cfg.choices[1])
        miou = total / (len(self.gain) + 0.5)
        return {"miou": miou, "miou_fp32": miou}


def _evaluation(tmp_path, name, budgets=None, scorer=None):
    space = get_space(SPACE)
    scorer = scorer or FakeScorer(space)
    archive = EvalArchive(tmp_path / f"{name}.sqlite")
    return SubnetEvaluation(space, TableHardware(space), scorer, archive, "test-metrics",
                            budgets or Budgets(), checkpoint_sha256="0" * 64, seed=0), scorer


def test_same_seed_same_records_and_every_evaluation_is_archived(tmp_path):
    assert "coordinate-descent" in ALGORITHMS
    runs = []
    for name in ("a", "b"):
        evaluation, scorer = _evaluation(tmp_path, name)
        result = run_search("coordinate-descent", evaluation, budget=40, seed=3)
        runs.append(result)
        assert result.algorithm == "coordinate-descent"
        assert len(result.records) == 40 == len(scorer.calls)
        assert len(evaluation.archive) == 40
        assert result.records[0].arch == get_space(SPACE).seed_config().to_str()
    assert [r.arch for r in runs[0].records] == [r.arch for r in runs[1].records]
    assert [r.arch for r in runs[0].front] == [r.arch for r in runs[1].front]


def test_a_resumed_run_replays_its_moves_from_the_archive(tmp_path):
    full, _ = _evaluation(tmp_path, "full")
    expected = coordinate_descent_search(full, budget=50, seed=1)
    first, _ = _evaluation(tmp_path, "resumed")
    coordinate_descent_search(first, budget=30, seed=1)
    scorer = FakeScorer(get_space(SPACE))
    again, _ = _evaluation(tmp_path, "resumed", scorer=scorer)
    resumed = coordinate_descent_search(again, budget=50, seed=1)
    assert len(scorer.calls) == 20 and again.cache_hits == 30
    assert [r.arch for r in resumed.records] == [r.arch for r in expected.records]


def test_descent_stops_at_a_coordinatewise_optimum(tmp_path):
    evaluation, _ = _evaluation(tmp_path, "opt")
    space = evaluation.space
    result = coordinate_descent_search(evaluation, budget=5000, seed=0, tradeoffs=(0.0,))
    assert len(result.records) < 5000  # converged before the budget
    utility = Utility(evaluation, ("miou", "latency"), result.records[0], 0.0)
    best = max(result.records, key=utility)
    for decision in range(len(space.decisions)):
        for cfg in _neighbours(space, space.decode(np.asarray(
                space.resolve(best.arch).choices)), decision):
            assert utility(evaluation.seen[cfg.to_str()]) <= utility(best)


def test_budgets_pull_the_descent_into_the_feasible_region(tmp_path):
    probe, _ = _evaluation(tmp_path, "probe")
    seed_latency = probe(get_space(SPACE).seed_config()).latency
    budgets = Budgets(latency=seed_latency * 0.8)
    evaluation, _ = _evaluation(tmp_path, "budget", budgets=budgets)
    result = coordinate_descent_search(evaluation, budget=400, seed=0, tradeoffs=(0.0,))
    assert result.records[0].latency > budgets.latency  # the seed is over budget
    assert result.front and all(r.latency <= budgets.latency for r in result.front)


def test_trade_offs_reach_cheaper_subnets(tmp_path):
    evaluation, _ = _evaluation(tmp_path, "tradeoff")
    result = coordinate_descent_search(evaluation, budget=400, seed=0, tradeoffs=(0.0, 1.0))
    latencies = [r.latency for r in result.front]
    assert len(result.front) >= 2 and min(latencies) < result.records[0].latency


def test_inert_decisions_are_not_evaluated():
    space = get_space("efficient-topformer")
    seed = space.seed_config()
    assert _neighbours(space, seed, space.index("s5.b3.kernel")) == []
    deeper = _neighbours(space, seed, space.index("s5.depth"))
    assert len(deeper) == 3 and all(space.canonical(c) == c for c in deeper)


def test_bad_arguments_name_the_fix(tmp_path):
    evaluation, _ = _evaluation(tmp_path, "bad")
    with pytest.raises(ConfigError, match="positive number"):
        coordinate_descent_search(evaluation, budget=0, seed=0)
    with pytest.raises(ConfigError, match="trade-offs >= 0"):
        coordinate_descent_search(evaluation, budget=5, seed=0, tradeoffs=(-1.0,))
