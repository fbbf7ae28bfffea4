"""Search: reproducible NSGA-II, hard budgets, archive-backed evaluation, valid configs only."""

from __future__ import annotations

import numpy as np
import pytest

from qanas.errors import ConfigError
from qanas.search.algorithms import pareto_front, run_search
from qanas.search.archive import EvalArchive
from qanas.search.problem import (
    Budgets,
    SpaceRepair,
    SubnetEvaluation,
    SubnetProblem,
    parse_objectives,
)
from qanas.space import get_space
from tests.support.fakes import FakeScorer, _hw


def _evaluation(tmp_path, name, space_name="squeezenas-small", budgets=None, scorer=None):
    space = get_space(space_name)
    scorer = scorer or FakeScorer(space)
    hw = _hw(space)
    archive = EvalArchive(tmp_path / f"{name}.sqlite")
    return SubnetEvaluation(space, hw, scorer, archive, "test-metrics", budgets or Budgets(),
                            checkpoint_sha256="0" * 64, seed=0), scorer


def test_nsga2_same_seed_same_front(tmp_path):
    fronts = []
    for run in ("a", "b"):
        evaluation, _ = _evaluation(tmp_path, run)
        result = run_search("nsga2", evaluation, budget=16, seed=7,
                            objectives=("miou", "latency"))
        assert len(result.records) == 16
        fronts.append([(r.arch, r.miou, r.latency) for r in result.front])
    assert fronts[0] == fronts[1] and fronts[0]


def test_archive_answers_a_rerun_without_scoring(tmp_path):
    evaluation, scorer = _evaluation(tmp_path, "a")
    first = run_search("nsga2", evaluation, budget=12, seed=1, objectives=("miou", "sram"))
    assert first.scored == len(scorer.calls) == len(set(scorer.calls))
    again, scorer2 = _evaluation(tmp_path, "a")  # same archive file
    second = run_search("nsga2", again, budget=12, seed=1, objectives=("miou", "sram"))
    assert scorer2.calls == [] and second.scored == 0 and second.cache_hits >= 12
    assert [r.arch for r in second.front] == [r.arch for r in first.front]


def test_budgets_exclude_over_budget_subnets_and_skip_their_scoring(tmp_path):
    space = get_space("squeezenas-small")
    hw = _hw(space)
    rng = np.random.default_rng(0)
    srams = sorted(hw.profile(space.sample(rng)).sram_bytes for _ in range(12))
    flashes = sorted(hw.profile(space.sample(rng)).flash_bytes for _ in range(12))
    budgets = Budgets(sram_bytes=srams[len(srams) // 2], flash_bytes=flashes[-3])
    evaluation, scorer = _evaluation(tmp_path, "c", budgets=budgets)
    result = run_search("random", evaluation, budget=20, seed=3)
    over = [r for r in result.records
            if r.sram_bytes > budgets.sram_bytes or r.flash_bytes > budgets.flash_bytes]
    assert over, "the budget must bite for this test to mean anything"
    assert all(r.miou is None for r in over)
    assert not {r.arch for r in over} & set(scorer.calls)
    assert result.front
    for r in result.front:
        assert r.sram_bytes <= budgets.sram_bytes and r.flash_bytes <= budgets.flash_bytes
    latency_cap = sorted(r.latency for r in result.records)[5]
    evaluation2, _ = _evaluation(tmp_path, "d", budgets=Budgets(latency=latency_cap))
    capped = run_search("nsga2", evaluation2, budget=12, seed=3)
    assert capped.front and all(r.latency <= latency_cap for r in capped.front)


def test_random_front_is_non_dominated_and_reproducible(tmp_path):
    fronts = []
    for run in ("r1", "r2"):
        evaluation, _ = _evaluation(tmp_path, run)
        result = run_search("random", evaluation, budget=15, seed=5)
        F = result.front_matrix()
        everything = np.stack([evaluation.objectives(r, result.objectives) for r in result.records])
        for row in F:
            dominated = np.all(everything <= row, axis=1) & np.any(everything < row, axis=1)
            assert not dominated.any()
        fronts.append([r.arch for r in result.front])
    assert fronts[0] == fronts[1]


def test_repair_in_the_pymoo_loop_yields_valid_configs_only(tmp_path):
    space = get_space("fmas-mbv2")
    evaluation, scorer = _evaluation(tmp_path, "f", space_name="fmas-mbv2")
    problem = SubnetProblem(evaluation, ("miou", "latency"))
    rng = np.random.default_rng(0)
    raw = rng.uniform(-2, problem.xu + 2, size=(200, problem.n_var))
    raw[:, [space.index(d.name) for d in space.decisions if d.name.startswith("k")]] = 1  # drop all
    fixed = SpaceRepair(space)._do(problem, raw)
    assert all(space.is_valid(space.decode(x)) for x in fixed)
    assert np.all(fixed >= 0) and np.all(fixed <= problem.xu)
    run_search("nsga2", evaluation, budget=10, seed=0, objectives=("miou", "latency"))
    assert scorer.calls  # FakeScorer asserts validity of every config it receives


def test_bad_names_are_clear_errors(tmp_path):
    evaluation, _ = _evaluation(tmp_path, "g")
    with pytest.raises(ConfigError, match="gumbel search samples a learned distribution"):
        run_search("gumbel", evaluation, budget=4, seed=0)
    with pytest.raises(ConfigError, match="unknown search algorithm"):
        run_search("bogus", evaluation, budget=4, seed=0)
    with pytest.raises(ConfigError, match="choose distinct names"):
        parse_objectives("miou,speed")
    assert parse_objectives("miou, flash") == ("miou", "flash")
    assert pareto_front([], evaluation, ("miou",)) == []


def test_nsga2_first_population_holds_the_spaces_extremes():
    from qanas.search.algorithms import initial_population

    space = get_space("squeezenas-small")
    X = initial_population(space, 10, seed=4)
    assert X.shape == (10, len(space.decisions)) and X.dtype.kind == "i"
    archs = [space.decode(x).to_str() for x in X]
    for anchor in (space.min_config(), space.max_config(), space.seed_config()):
        assert anchor.to_str() in archs
    assert all(space.is_valid(space.decode(x)) for x in X)
    assert np.array_equal(X, initial_population(space, 10, seed=4))  # seeded
    assert not np.array_equal(X, initial_population(space, 10, seed=5))
    assert len(initial_population(space, 2, seed=0)) == 2


@pytest.mark.parametrize("budget", [3, 6, 13])
def test_nsga2_spends_exactly_its_budget(tmp_path, budget):
    evaluation, scorer = _evaluation(tmp_path, f"b{budget}")
    result = run_search("nsga2", evaluation, budget=budget, seed=1,
                        objectives=("miou", "latency"))
    assert len(result.records) == budget and len(scorer.calls) == budget
