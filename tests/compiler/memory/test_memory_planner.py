"""The static memory planner: hand-computed plans, properties, errors, workspaces, budgets."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compiler.errors import MemoryBudgetExceeded
from compiler.memory import (
    PLANNERS,
    BufferLifetime,
    GreedyBySizePlanner,
    GreedyMultiOrderPlanner,
    GreedyPlanner,
    MemoryPlan,
    MemoryPlanError,
    NoReusePlanner,
    align_up,
    check_budget,
    get_planner,
    lower_bound,
    peak_live,
    plan_with_workspaces,
    workspace_buffers,
    workspace_bytes,
)
from compiler.memory.planner import PlanningProblem
from compiler.memory.search import fit_within
from targets.registry import UnknownNameError

B = BufferLifetime


def chain():
    """in -> k0 -> a -> k1 -> b -> k2 -> c -> k3 -> out: live pairs 176, 96, 96, 80 bytes."""
    return [
        B("x", 100, 0, 0),
        B("a", 64, 0, 1),
        B("b", 32, 1, 2),
        B("c", 64, 2, 3),
        B("y", 16, 3, 3),
    ]


def diamond():
    """Residual block: x feeds expand (step 0) and the add (step 2); LB is x+m+p at step 1."""
    return [
        B("x", 64, 0, 2),
        B("m", 128, 0, 1),
        B("p", 64, 1, 2),
        B("y", 64, 2, 3),
        B("z", 32, 3, 3),
    ]


# --- hand-computed plans ---------------------------------------------------------------


def test_chain_greedy_by_size_offsets_by_hand():
    # Visit order by aligned size: x(112), a(64, starts first), c(64), b(32), y(16).
    # x->0; a conflicts x->112; c conflicts nothing placed->0; b between c[0,64) and
    # a[112,176)->64; y conflicts c[0,64)->64.
    plan = GreedyBySizePlanner().plan(chain())
    assert plan.offsets == {"x": 0, "a": 112, "c": 0, "b": 64, "y": 64}
    assert (plan.arena_bytes, plan.lower_bound_bytes, plan.ratio) == (176, 176, 1.0)
    assert plan.planner == "greedy-by-size"


def test_chain_no_reuse_offsets_by_hand():
    # Back to back by (first step, name): a, x, b, c, y with aligned sizes 64, 112, 32, 64, 16.
    plan = NoReusePlanner().plan(chain())
    assert plan.offsets == {"a": 0, "x": 64, "b": 176, "c": 208, "y": 272}
    assert plan.arena_bytes == 288 == sum(b.aligned_size for b in chain())


def test_diamond_greedy_by_size_offsets_by_hand():
    # m(128)->0; x conflicts m->128; p conflicts m, x->192; y conflicts x[128,192),
    # p[192,256)->0; z conflicts y[0,64)->64.
    plan = GreedyBySizePlanner().plan(diamond())
    assert plan.offsets == {"m": 0, "x": 128, "p": 192, "y": 0, "z": 64}
    assert (plan.arena_bytes, plan.lower_bound_bytes) == (256, 256)


def test_diamond_default_planner_snaps_to_longest_lived_by_hand():
    # LB search, start order x, m, p, y, z, capacity 256: x->0 (bottom); m against the
    # top (lives forever) ->128; p in [64,128) against x (dies at 2) ->64; y in
    # [128,256) against the top ->192; z in [0,192) against the bottom ->0.
    plan = get_planner().plan(diamond())
    assert plan.offsets == {"x": 0, "m": 128, "p": 64, "y": 192, "z": 0}
    assert (plan.arena_bytes, plan.strategy, plan.planner) == (256, "lb-search", "greedy")


def test_default_planner_reaches_lb_where_greedy_by_size_fragments():
    # LB = 128 (steps 2 and 4). By size: d->0, b->0, c->64, then a must avoid d[0,80)
    # and c[64,128) -> 128: arena 176. The LB search goes in start order: b->0,
    # c->64, a->0 (against the bottom), d in [48,128) against the top -> 48: arena 128.
    bufs = [B("a", 48, 3, 5), B("b", 64, 0, 2), B("c", 64, 2, 3), B("d", 80, 4, 4)]
    assert GreedyBySizePlanner().plan(bufs).arena_bytes == 176
    plan = get_planner().plan(bufs)
    assert plan.offsets == {"a": 0, "b": 0, "c": 64, "d": 48}
    assert (plan.arena_bytes, plan.lower_bound_bytes) == (128, 128)


def test_lower_bound_and_peak_by_hand():
    assert lower_bound(chain()) == 176
    assert lower_bound(diamond()) == 256
    assert peak_live(diamond()) == (1, ["x", "m", "p"])
    assert lower_bound([]) == 0


# --- every registered planner ----------------------------------------------------------


@pytest.mark.parametrize("name", PLANNERS.names())
@pytest.mark.parametrize("make", [chain, diamond])
def test_every_planner_is_valid_and_at_least_lb(name, make):
    plan = get_planner(name).plan(make())
    plan.validate(make())
    assert plan.arena_bytes >= plan.lower_bound_bytes == lower_bound(make())
    assert plan.planner == name


@pytest.mark.parametrize("name", PLANNERS.names())
def test_empty_plan(name):
    plan = get_planner(name).plan([])
    assert (plan.offsets, plan.arena_bytes, plan.lower_bound_bytes, plan.ratio) == ({}, 0, 0, 1.0)


def test_unknown_planner_lists_known_names():
    with pytest.raises(UnknownNameError, match="greedy-by-size.*no-reuse"):
        get_planner("gredy")


# --- alignment and workspaces ----------------------------------------------------------


def test_alignment_is_respected_and_padding_reserved():
    bufs = [B("a", 5, 0, 1, alignment=64), B("b", 70, 1, 2, alignment=64), B("c", 3, 0, 2, 4)]
    plan = get_planner("greedy-by-size").plan(bufs)
    plan.validate(bufs)
    assert plan.offsets["a"] % 64 == 0 and plan.offsets["b"] % 64 == 0
    assert plan.lower_bound_bytes == 64 + 128 + 4
    assert plan.arena_alignment == 64
    assert align_up(70, 64) == 128 == bufs[1].aligned_size


def test_workspace_is_live_only_at_its_step():
    # Step 0: x + a = 128 bytes; step 1: a + b + scratch(32) = 128: the scratch reuses x.
    plan = plan_with_workspaces(
        [B("x", 64, 0, 0), B("a", 64, 0, 1), B("b", 32, 1, 1)], {1: 32, 0: 0}
    )
    assert set(plan.offsets) == {"x", "a", "b", "workspace_1"}
    assert plan.arena_bytes == plan.lower_bound_bytes == 128
    assert workspace_buffers({2: 10}) == [B("workspace_2", 10, 2, 2)]
    assert workspace_bytes([100, 4, 16]) == 112 + 16 + 16


# --- validate() catches broken plans -----------------------------------------------------


def test_validate_rejects_overlapping_live_buffers():
    bufs = diamond()
    plan = MemoryPlan({"x": 0, "m": 32, "p": 160, "y": 0, "z": 64}, 256, 256, "hand")
    with pytest.raises(MemoryPlanError, match="'x'.*'m'.*overlap in memory"):
        plan.validate(bufs)


@pytest.mark.parametrize(
    ("offsets", "arena", "message"),
    [
        ({"a": 8, "b": 16}, 64, "alignment 16"),
        ({"a": 0, "b": 32}, 40, "ends past the arena"),
        ({"a": 0}, 64, r"no offset for \['b'\]"),
        ({"a": 0, "b": 16, "zz": 0}, 64, r"unknown buffers \['zz'\]"),
    ],
)
def test_validate_rejects_misplaced_buffers(offsets, arena, message):
    plan = MemoryPlan(offsets, arena, 32, "hand")
    with pytest.raises(MemoryPlanError, match=message):
        plan.validate([B("a", 16, 0, 0), B("b", 16, 1, 1)])


def test_buffers_sharing_bytes_at_different_steps_are_valid():
    MemoryPlan({"a": 0, "b": 0}, 16, 16, "hand").validate([B("a", 16, 0, 0), B("b", 16, 1, 1)])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": -1}, "size must be >= 0"),
        ({"first": 3, "last": 2}, "0 <= first <= last"),
        ({"alignment": 24}, "power of two"),
        ({"size": 1.5}, "must be an int"),
        ({"name": ""}, "non-empty string"),
    ],
)
def test_buffer_lifetime_rejects_bad_fields(kwargs, message):
    fields = {"name": "t", "size": 16, "first": 0, "last": 1, **kwargs}
    with pytest.raises((ValueError, TypeError), match=message):
        BufferLifetime(**fields)


def test_duplicate_names_are_rejected():
    with pytest.raises(MemoryPlanError, match=r"duplicated: \['a'\]"):
        get_planner().plan([B("a", 16, 0, 0), B("a", 16, 1, 1)])


def test_plan_dict_round_trip_and_unknown_keys():
    plan = get_planner().plan(diamond())
    data = json.loads(json.dumps(plan.to_dict()))
    assert data["ratio"] == 1.0
    assert MemoryPlan.from_dict(data) == plan
    with pytest.raises(MemoryPlanError, match=r"unknown MemoryPlan keys \['arena'\]"):
        MemoryPlan.from_dict({**data, "arena": 1})


# --- budget ----------------------------------------------------------------------------


def test_check_budget_passes_when_it_fits():
    check_budget(get_planner().plan(diamond()), 256)


def test_check_budget_names_numbers_peak_and_fix_when_lb_too_big():
    plan = get_planner().plan(diamond())
    with pytest.raises(MemoryBudgetExceeded) as info:
        check_budget(plan, 200, what="SRAM of cortex-m7", buffers=diamond())
    text = str(info.value)
    for part in (
        "256 bytes",
        "200-byte",
        "56 bytes over",
        "SRAM of cortex-m7",
        "No planner can fit",
    ):
        assert part in text
    assert "Peak at step 1, live buffers: x, m, p" in text
    assert isinstance(info.value, ValueError)


def test_check_budget_suggests_a_better_planner_when_lb_fits():
    plan = NoReusePlanner().plan(diamond())  # 352 bytes, LB 256
    with pytest.raises(MemoryBudgetExceeded, match="96 bytes over.*try planner 'greedy'"):
        check_budget(plan, 256)


# --- LB search -------------------------------------------------------------------------


def test_lb_search_respects_capacity_and_gives_up_below_lb():
    problem = PlanningProblem(diamond())
    offsets = fit_within(problem, 256, max_placements=100)
    assert offsets is not None
    assert max(o + s for o, s in zip(offsets, problem.size.tolist(), strict=True)) <= 256
    assert fit_within(problem, 255, max_placements=1000) is None
    assert fit_within(problem, 256, max_placements=2) is None  # budget exhausted


# --- properties on random lifetimes ------------------------------------------------------


@st.composite
def buffer_lists(draw, alignments=(1, 4, 16, 64)):
    n = draw(st.integers(0, 30))
    uniform = draw(st.sampled_from(alignments))
    mixed = draw(st.booleans()) and len(alignments) > 1
    bufs = []
    for i in range(n):
        first = draw(st.integers(0, 20))
        last = first + draw(st.integers(0, 8))
        size = draw(st.integers(0, 3000))
        align = draw(st.sampled_from(alignments)) if mixed else uniform
        bufs.append(B(f"b{i}", size, first, last, align))
    return bufs


def _brute_force_lb(bufs):
    steps = {s for b in bufs for s in range(b.first, b.last + 1)}
    return max(
        (sum(b.aligned_size for b in bufs if b.first <= s <= b.last) for s in steps), default=0
    )


@settings(max_examples=150, deadline=None)
@given(buffer_lists())
def test_property_every_planner_is_valid_above_lb_and_below_no_reuse(bufs):
    lb = _brute_force_lb(bufs)
    baseline = NoReusePlanner().plan(bufs)
    assert baseline.arena_bytes == sum(b.aligned_size for b in bufs)
    for name in PLANNERS.names():
        plan = get_planner(name).plan(bufs)
        plan.validate(bufs)
        assert plan.lower_bound_bytes == lb
        assert lb <= plan.arena_bytes
        if name == "greedy":  # never worse than the baseline, even with mixed alignments
            assert plan.arena_bytes <= baseline.arena_bytes


@settings(max_examples=100, deadline=None)
@given(buffer_lists(alignments=(16,)))
def test_property_greedy_by_size_never_exceeds_no_reuse_with_uniform_alignment(bufs):
    for fit in ("first", "best"):
        assert (
            GreedyBySizePlanner(fit).plan(bufs).arena_bytes
            <= NoReusePlanner().plan(bufs).arena_bytes
        )


@settings(max_examples=100, deadline=None)
@given(buffer_lists(), st.integers(0, 2**32 - 1))
def test_property_plans_are_deterministic_and_ignore_input_order(bufs, seed):
    shuffled = list(bufs)
    random.Random(seed).shuffle(shuffled)
    for planner in (GreedyMultiOrderPlanner(), GreedyPlanner("breadth", "best"), NoReusePlanner()):
        assert planner.plan(bufs) == planner.plan(shuffled) == planner.plan(list(bufs))


@settings(max_examples=100, deadline=None)
@given(buffer_lists())
def test_property_lb_search_result_is_valid_or_none(bufs):
    problem = PlanningProblem(bufs)
    offsets = fit_within(problem, problem.lower_bound, max_placements=4 * len(bufs) + 1)
    if offsets is None:
        return
    arena = max((o + s for o, s in zip(offsets, problem.size.tolist(), strict=True)), default=0)
    assert arena <= problem.lower_bound
    MemoryPlan(
        {b.name: o for b, o in zip(bufs, offsets, strict=True)}, arena, arena, "search"
    ).validate(bufs)
