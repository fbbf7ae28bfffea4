"""Hardware cost: peak SRAM = the compiler's plan-only arena, flash, MACs, latency."""

from __future__ import annotations

import time

import numpy as np
import pytest
from torch import nn

from qanas.cost.hardware import (
    BIAS_BYTES,
    REQUANT_BYTES_PER_CHANNEL,
    AnalyticLatencyModel,
    HardwareCostModel,
    Latency,
    LatencyModel,
)
from qanas.cost.sram import CompiledSramModel
from qanas.errors import ConfigError
from qanas.space import get_space
from qanas.supernet import build_supernet
from targets import Target, get_target, total_macs
from targets.latency import analytic_cycles, coefficients_for

SPACE = "squeezenas-small"
SIZE = (32, 64)


def test_profile_matches_planner_and_counts():
    space = get_space(SPACE)
    hw = HardwareCostModel(space, get_target("host"), SIZE, num_classes=4)
    cfg = space.sample(np.random.default_rng(1))
    prof = hw.profile(cfg)
    memory = hw.memory(cfg)
    assert (prof.sram_bytes, prof.sram_lower_bound_bytes) == (memory.arena_bytes,
                                                              memory.lower_bound_bytes)
    assert prof.sram_bytes >= prof.sram_lower_bound_bytes > 0
    assert memory.target == "host" and memory.optimise == "size"
    assert prof.macs == total_macs(space.layer_specs(cfg, SIZE, 4))
    # flash against the real extracted subnet's conv weights
    subnet = build_supernet(space, 4).extract(cfg)
    convs = [m for m in subnet.modules() if isinstance(m, nn.Conv2d)]
    weights = sum(m.weight.numel() for m in convs)
    per_channel = sum(m.out_channels for m in convs) * (BIAS_BYTES + REQUANT_BYTES_PER_CHANNEL)
    assert prof.flash_bytes == weights + per_channel
    assert hw.profile(cfg) is prof  # cached


def test_sram_grows_with_resolution_and_the_output_bounds_it():
    space = get_space(SPACE)
    cfg = space.min_config()
    small = HardwareCostModel(space, get_target("host"), (32, 64), 4).memory(cfg)
    sram = CompiledSramModel(space, get_target("host"), (64, 128), 4, measure_unfused=True)
    large = HardwareCostModel(space, get_target("host"), (64, 128), 4,
                              sram_model=sram).memory(cfg)
    assert large.arena_bytes > small.arena_bytes
    assert large.arena_bytes >= 4 * 64 * 128  # the int8 logits live in the arena
    specs = space.layer_specs(cfg, (64, 128), 4)
    biggest = max(s.output_elements for s in specs if s.op != "act")
    assert large.unfused_bound_bytes >= biggest  # every layer output exists in full


def test_analytic_latency_orders_min_below_max_and_is_labelled():
    space = get_space(SPACE)
    model = AnalyticLatencyModel(space, get_target("host"), SIZE, 4)
    assert isinstance(model, LatencyModel)
    lo, hi = model.predict(space.min_config()), model.predict(space.max_config())
    assert isinstance(lo, Latency) and lo.unit == "cycles" and lo.source == "analytic:native"
    assert 0 < lo.value < hi.value


def test_unknown_cpu_is_a_clear_error():
    target = Target(name="weird", description="", isa="mips", cpu="r3000")
    with pytest.raises(ConfigError, match="known: .*cortex-m4"):
        AnalyticLatencyModel(get_space(SPACE), target, SIZE, 4)
    assert coefficients_for("nope", "aarch64").name == "aarch64"


def test_the_search_prices_latency_with_the_fit_of_the_mode_it_plans_for():
    """`qanas search --optimise speed` (the demo's mode) predicts analytic latency with the
    coefficients fitted on speed builds, a size search with the size fit; a mixed-precision
    search prices its 4-bit convs at the int4 rates of the same mode."""
    from types import SimpleNamespace

    from qanas.cost import cost_model_for
    from qanas.search.bits import mixed_precision

    space, target = get_space(SPACE), get_target("cortex-m55")
    cfg = space.seed_config()
    specs = space.layer_specs(cfg, SIZE, 4)
    predicted = {}
    for optimise in ("size", "speed"):
        coeffs = coefficients_for(target.cpu, target.isa, optimise)
        assert coeffs.optimise == optimise and coeffs.rationale.startswith("fitted")
        choice = cost_model_for(target, space, SIZE, 4, no_lut=True, optimise=optimise)
        assert choice.model.latency_model.coeffs is coeffs
        predicted[optimise] = choice.model.latency_model.predict(cfg).value
        assert predicted[optimise] == analytic_cycles(specs, coeffs)
        mixed_precision(SimpleNamespace(image_size=SIZE, num_classes=4, evaluator=None),
                        choice, "w4w8", target)
        assert choice.model.bits_latency.coeffs is coeffs
    assert predicted["size"] != predicted["speed"]
    with pytest.raises(ConfigError, match="--optimise 'fast'.*size, speed"):
        AnalyticLatencyModel(space, target, SIZE, 4, optimise="fast")


ARENA_SUBNETS = (  # (space, which): min / seed config, or a seeded `space.sample`
    (SPACE, "min"), (SPACE, "seed"), (SPACE, 1), ("mbv2-deeplab", "min"))


def _config(space, which):
    if which == "min":
        return space.min_config()
    if which == "seed":
        return space.seed_config()
    return space.sample(np.random.default_rng(which))


@pytest.mark.slow
def test_search_sram_equals_the_compiled_arena(tmp_path):
    """The search's SRAM figure is `compile_model`'s arena for the same exported subnet."""
    from compiler.driver import compile_model

    report = []
    for space_name, which in ARENA_SUBNETS:
        space = get_space(space_name)
        cfg = _config(space, which)
        hw = HardwareCostModel(space, get_target("host"), SIZE, num_classes=4)
        start = time.perf_counter()
        sram = hw.profile(cfg).sram_bytes
        seconds = time.perf_counter() - start
        onnx_path = hw.sram.exporter.export_onnx(cfg, tmp_path / f"{space_name}-{which}")
        compiled = compile_model(onnx_path, "host", tmp_path / f"{space_name}-{which}-c")
        report.append(f"{space_name} {which}: search {sram} B, compiled {compiled.arena_bytes} B, "
                      f"{seconds:.1f} s")
        print(report[-1])
        assert sram == compiled.arena_bytes, "\n".join(report)


def test_every_registered_target_has_latency_coefficients():
    from targets import get_target, list_targets

    for name in list_targets():
        target = get_target(name)
        assert coefficients_for(target.cpu, target.isa).name in (target.cpu, target.isa), name


def test_models_planning_alike_share_reports_and_others_do_not(monkeypatch):
    """A second search of the same subnets in one process plans nothing again."""
    from qanas.cost import sram as sram_module

    planned = []

    def plan(model, target, options, scratch_cache, measure_unfused):
        planned.append(options.optimise)
        return f"report {len(planned)}"

    monkeypatch.setattr(sram_module, "plan_model_memory", plan)
    monkeypatch.setattr(CompiledSramModel, "_shared_reports", type(
        CompiledSramModel._shared_reports)())
    space, target = get_space("squeezenas-small"), get_target("host")
    cfg = space.resolve("min")

    def model(**kwargs):
        sram = CompiledSramModel(space, target, (64, 128), 4, **kwargs)
        monkeypatch.setattr(sram.exporter, "qdq_model", lambda c: c.to_str())
        return sram

    first = model().report(cfg)
    assert model().report(cfg) == first and planned == ["size"]
    assert model(optimise="speed").report(cfg) == "report 2"
    assert model(seed=1).report(cfg) == "report 3"
    assert model(share_reports=False).report(cfg) == "report 4"
