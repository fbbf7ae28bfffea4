"""NPU-aware pruning of a search space: the group-testing logic (fake probes, pure logic),
the restricted space pymoo searches, and the real thing (export + Vela) on a toy space."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qanas.errors import ConfigError
from qanas.space import get_space
from qanas.space.npu_pruning import (
    CACHE_NAME,
    NpuPruning,
    ProbeResult,
    cached_pruning,
    prune_for_npu,
)
from qanas.space.restricted import RestrictedSpace
from tests.support.npu_toy_space import register_npu_toy

RESIZE = ("ResizeBilinear", "t/resize", "scale-factor=4 unsupported")


@pytest.fixture(autouse=True)
def _toy():
    register_npu_toy()


class FakeProbe:
    """CPU operators as a function of the labels (pure logic test of the grouping)."""

    def __init__(self, rule):
        self.rule, self.calls = rule, []

    def __call__(self, cfg):
        self.calls.append(cfg.to_str())
        return self.rule(dict(zip([d.name for d in cfg.search_space.decisions],
                                  cfg.labels(), strict=True)))


def test_clean_groups_cost_one_probe_per_option():
    space = get_space("squeezenas-small")
    probe = FakeProbe(lambda labels: ProbeResult())
    result = prune_for_npu(space, probe, {})
    # seed + one probe per option other than the seed's (k3e6g1), all 20 blocks at once
    assert result.removed == [] and result.probes == len(probe.calls) == 1 + 12


def test_a_dirty_group_is_split_to_find_the_decision():
    space = get_space("squeezenas-small")

    def rule(labels):
        bad = labels["s3.b2"] == "k3e1g2d2"
        return ProbeResult((("ResizeBilinear", "x", "because"),) if bad else ())

    result = prune_for_npu(space, FakeProbe(rule), {})
    assert [(r.decision, r.option) for r in result.removed] == [("s3.b2", "k3e1g2d2")]
    assert result.probes == 1 + 12 + 20  # the dirty option is retried per block
    restricted = result.restrict(space)
    assert restricted.removed == {"s3.b2": ("k3e1g2d2",)}
    assert "because" in result.removed[0].reason


def test_operators_already_in_the_seed_do_not_remove_a_choice():
    space = get_space("npu-toy")

    def rule(labels):
        ops = [RESIZE]  # the fixed part of the network has one CPU resize
        if labels["up"] == "x4":
            ops.append(("Mean", "t/mean", "axis unsupported"))
        if labels["b1"] == "k1":
            ops.append(("ResizeBilinear", "other", "same type, one more"))
        return ProbeResult(tuple(ops))

    result = prune_for_npu(space, FakeProbe(rule), {})
    assert result.baseline_cpu_ops == (RESIZE,)
    assert sorted((r.decision, r.option) for r in result.removed) == [("b1", "k1"), ("up", "x4")]
    by_decision = {r.decision: r for r in result.removed}
    assert by_decision["up"].cpu_ops == (("Mean", "t/mean", "axis unsupported"),)
    assert "Mean" in by_decision["up"].reason


def test_probe_errors_remove_the_choice_and_a_broken_seed_is_refused():
    space = get_space("npu-toy")
    result = prune_for_npu(space, FakeProbe(
        lambda labels: ProbeResult(error="UnsupportedOpError: x") if labels["up"] == "x4"
        else ProbeResult()), {})
    assert [(r.decision, r.option) for r in result.removed] == [("up", "x4")]
    assert "could not be compiled" in result.removed[0].reason
    with pytest.raises(ConfigError, match="seed network"):
        prune_for_npu(space, FakeProbe(lambda labels: ProbeResult(error="boom")), {})


def test_a_decision_left_without_options_is_an_error():
    space = get_space("npu-toy")
    with pytest.raises(ConfigError, match="every option of 'up'"):
        RestrictedSpace(space, {"up": ()})


def test_pruning_is_cached_per_key(tmp_path):
    space = get_space("npu-toy")
    probe = FakeProbe(lambda labels: ProbeResult((RESIZE,) if labels["up"] == "x4" else ()))
    key = {"space": "npu-toy", "target": "ethos-u55-128", "image_size": [16, 16]}
    first = cached_pruning(tmp_path, space, probe, key)
    calls = len(probe.calls)
    again = cached_pruning(tmp_path, space, probe, key)
    assert again.cached and len(probe.calls) == calls
    assert again.to_dict()["removed"] == first.to_dict()["removed"]
    assert json.loads((tmp_path / CACHE_NAME).read_text())["key"] == key
    cached_pruning(tmp_path, space, probe, {**key, "image_size": [32, 32]})
    assert len(probe.calls) > calls  # another image size is probed again
    assert NpuPruning.from_dict(first.to_dict()).removed == first.removed


def test_restricted_space_only_yields_allowed_subnets():
    base = get_space("squeezenas-small")
    space = RestrictedSpace(base, {"s1.b1": ("k3e1g1", "skip"), "s5.b4": ("k5e6g1",)})
    assert space.name == base.name and list(space.upper_bounds[:2]) == [1, 12]
    assert space.upper_bounds[base.index("s5.b4")] == 0
    rng = np.random.default_rng(0)
    for _ in range(50):
        cfg = space.sample(rng)
        assert cfg.label("s1.b1") in ("k3e1g1", "skip") and cfg.label("s5.b4") == "k5e6g1"
        assert space.decode(space.encode(cfg)) == cfg and base.is_valid(cfg)
    top = space.decode(space.upper_bounds)
    assert top.label("s1.b1") == "skip" and space.allows(top)
    assert space.allows(space.max_config()) and space.allows(space.seed_config())
    with pytest.raises(ConfigError, match="not options"):
        RestrictedSpace(base, {"s1.b1": ("k9e9g9",)})
    with pytest.raises(ConfigError):
        space.encode(base.seed_config())  # k3e6g1 at s5.b4 was removed


@pytest.mark.slow
def test_vela_prunes_the_upsampling_it_cannot_map(tmp_path):
    """Real export + Vela: x4 half-pixel bilinear upsampling is refused, nothing else."""
    from qanas.cost.vela import setup_npu_search
    from targets import get_target

    npu = setup_npu_search(get_space("npu-toy"), get_target("ethos-u55-128"), (16, 16), 4,
                           tmp_path, seed=0)
    pruning = npu.pruning
    assert [(r.decision, r.option) for r in pruning.removed] == [("up", "x4")]
    removed = pruning.removed[0]
    assert [op[0] for op in removed.cpu_ops] == ["ResizeBilinear"]
    assert "scale-factor=4" in removed.reason
    assert pruning.baseline_cpu_ops == () and pruning.probes == 3
    assert npu.space.removed == {"up": ("x4",)} and npu.space.cardinality == 4
    assert (tmp_path / CACHE_NAME).is_file()


def test_pymoo_repair_and_bounds_stay_inside_the_restricted_space():
    from qanas.search.problem import SpaceRepair

    base = get_space("squeezenas-small")
    space = RestrictedSpace(base, {d.name: ("k3e1g1", "k5e6g1", "skip")
                                   for d in base.decisions[::2]})
    rng = np.random.default_rng(1)
    X = rng.uniform(-0.4, space.upper_bounds + 0.4, size=(40, len(space.decisions)))
    repaired = SpaceRepair(space)._do(None, X)
    assert repaired.min() >= 0 and (repaired <= space.upper_bounds).all()
    for row in repaired:
        cfg = space.decode(row)
        assert space.allows(cfg) and base.is_valid(cfg)
        assert all(cfg.label(d.name) in ("k3e1g1", "k5e6g1", "skip")
                   for d in base.decisions[::2])
