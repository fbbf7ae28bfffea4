"""FairNAS strict fairness, SPOS uniformity and sampler state for exact resume."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chisquare

from qanas.errors import CheckpointError
from qanas.space import get_space
from qanas.train.samplers import FairNASSampler, SPOSSampler, build_sampler, fair_sequence
from tests.support.toy_space import TOY, TOY_REPAIR, register_toy_spaces


@pytest.fixture(autouse=True)
def _toy():
    register_toy_spaces()


@settings(max_examples=60, deadline=None)
@given(c=st.integers(1, 9), extra=st.integers(0, 12), seed=st.integers(0, 2**31))
def test_fair_sequence_uses_each_option_floor_or_ceil_times(c, extra, seed):
    m = c + extra
    seq = fair_sequence(c, m, np.random.default_rng(seed))
    counts = np.bincount(seq, minlength=c)
    assert seq.shape == (m,) and counts.sum() == m
    assert counts.min() >= m // c and counts.max() <= -(-m // c)


def test_fairnas_trains_every_option_once_per_step():
    space = get_space(TOY)
    sampler = FairNASSampler(space, seed=3)
    m = sampler.paths_per_step
    assert m == max(d.size for d in space.decisions) == 4
    for _ in range(50):
        paths = sampler.next_paths()
        assert len(paths) == m
        table = np.array([p.choices for p in paths])
        for i, d in enumerate(space.decisions):
            counts = np.bincount(table[:, i], minlength=d.size)
            if d.size == m:
                assert (counts == 1).all(), f"{d.name}: {counts}"
            else:
                assert counts.min() >= m // d.size and counts.max() <= -(-m // d.size)
    # Cumulative counts: options of full-size decisions are exactly balanced.
    assert sampler.counts[1].tolist() == [50, 50, 50, 50]
    assert sampler.counts[2].tolist() == [100, 100]  # 2 options, m = 4: each exactly twice
    assert sampler.counts[0].sum() == 200


def test_fairnas_extra_picks_favour_no_option():
    # l1 has 3 options and m = 4: one extra pick per step, which must be uniform.
    sampler = FairNASSampler(get_space(TOY), seed=11)
    steps = 3000
    for _ in range(steps):
        sampler.next_paths()
    extras = sampler.counts[0] - steps  # each option gets 1 guaranteed pick per step
    assert extras.sum() == steps
    assert chisquare(extras).pvalue > 1e-3, extras


def test_spos_is_uniform_per_decision():
    space = get_space(TOY)
    sampler = SPOSSampler(space, seed=5)
    for _ in range(4000):
        (path,) = sampler.next_paths()
        space.validate(path)
    for decision, counts in zip(space.decisions, sampler.counts, strict=True):
        assert counts.sum() == 4000
        assert chisquare(counts).pvalue > 1e-3, (decision.name, counts)
    # Sanity check of the test itself: a biased sample fails it.
    assert chisquare([1100, 1000, 900, 1000]).pvalue < 1e-3


def test_counts_record_repaired_configs():
    space = get_space(TOY_REPAIR)
    sampler = FairNASSampler(space, seed=0)
    repaired_skip = 0
    for _ in range(200):
        for path in sampler.next_paths():
            assert space.is_valid(path)
            repaired_skip += path.choices[1] == 3
    # l2 "skip" is trained once per step, always with l3 repaired to "k3" ...
    assert sampler.counts[1].tolist() == [200] * 4
    # ... so l3 "k3" gets more than its fair half: the counts report it.
    assert sampler.counts[2][0] > sampler.counts[2][1]
    assert sampler.counts[2].sum() == 800 and repaired_skip == 200


@pytest.mark.parametrize("name", ["fairnas", "spos"])
def test_state_dict_round_trip_replays_the_same_paths(name):
    space = get_space(TOY)
    a = build_sampler(name, space, seed=7)
    for _ in range(5):
        a.next_paths()
    buffer = io.BytesIO()
    torch.save(a.state_dict(), buffer)
    buffer.seek(0)
    b = build_sampler(name, space, seed=999)
    b.load_state_dict(torch.load(buffer, weights_only=True))
    assert b.step == 5 and all((x == y).all() for x, y in zip(a.counts, b.counts, strict=True))
    for _ in range(5):
        assert a.next_paths() == b.next_paths()


def test_loading_another_samplers_state_is_refused():
    space = get_space(TOY)
    state = build_sampler("spos", space, 0).state_dict()
    with pytest.raises(CheckpointError, match="sampler is 'spos'.*uses 'fairnas'"):
        build_sampler("fairnas", space, 0).load_state_dict(state)


def test_unknown_sampler_lists_known_ones():
    with pytest.raises(KeyError, match="fairnas, spos"):
        build_sampler("greedy", get_space(TOY), 0)


def test_fairnas_keeps_every_fmas_layer_in_exactly_half_the_paths():
    """The keep-one-per-group rule is met by drawing the group jointly, not by a repair
    that forces first layers on: each keep/drop decision is fair at every step."""
    space = get_space("fmas-mbv2")
    sampler = FairNASSampler(space, seed=3)
    steps = 200
    for _ in range(steps):
        for path in sampler.next_paths():
            assert space.is_valid(path)
            assert space.repair(path.choices) == path.choices  # nothing left to repair
    m = sampler.paths_per_step
    for decision, counts in zip(space.decisions, sampler.counts, strict=True):
        assert counts.sum() == steps * m
        if decision.name.startswith("k") or decision.size == m:
            assert counts.tolist() == [steps * m // decision.size] * decision.size, (
                decision.name, counts)


def test_coupled_group_draw_names_an_unsatisfiable_constraint(monkeypatch):
    from qanas.train import samplers

    space = get_space("fmas-mbv2")
    monkeypatch.setattr(type(space), "group_is_valid", lambda self, group, picks: False)
    monkeypatch.setattr(samplers, "MAX_GROUP_DRAWS", 5)
    with pytest.raises(RuntimeError, match="k2.*fmas-mbv2.*strict fairness"):
        FairNASSampler(space, seed=0).next_paths()
