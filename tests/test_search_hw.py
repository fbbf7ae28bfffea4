"""Hardware cost: fused buffers from shapes, peak SRAM = the compiler's planner, flash, latency."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from compiler.memory import BufferLifetime, get_planner
from qanas.errors import ConfigError
from qanas.search.graph import module_graph
from qanas.search.hw import (
    BIAS_BYTES,
    REQUANT_BYTES_PER_CHANNEL,
    AnalyticLatencyModel,
    HardwareCostModel,
    Latency,
    LatencyModel,
)
from qanas.space import get_space
from targets import Target, get_target, total_macs
from targets.latency import coefficients_for

SPACE = "squeezenas-small"
SIZE = (32, 64)


class TinyResNet(nn.Module):
    """stem conv-bn-relu → residual 1x1 block → avgpool-free head → resize to input."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.body = nn.Sequential(nn.Conv2d(8, 8, 1, bias=False), nn.BatchNorm2d(8))
        self.head = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        y = self.stem(x)
        y = y + self.body(y)
        return F.interpolate(self.head(y), size=x.shape[-2:], mode="bilinear", align_corners=False)


def test_buffers_of_a_hand_built_net_and_peak_equals_planner():
    graph = module_graph(TinyResNet(), (1, 3, 8, 16))
    # stem (conv+bn+relu); body conv+bn+residual add (reads the stem output); head conv, which
    # also widens its output to int32 for the bilinear resize; resize: row takes, row lerp,
    # column takes, column lerp + requantize (the int8 output)
    assert graph.kernels == ("conv", "conv", "conv", "take", "take", "elementwise",
                             "take", "take", "elementwise")
    expected = [
        BufferLifetime("input", 3 * 8 * 16, 0, 0),
        BufferLifetime("k0_out", 8 * 4 * 8, 0, 1),  # read by the fused residual add at step 1
        BufferLifetime("k1_out", 8 * 4 * 8, 1, 2),
        BufferLifetime("k2_out", 2 * 4 * 8 * 4, 2, 4),  # int32 (x - zp) for the resize
        BufferLifetime("k3_out", 2 * 8 * 8 * 4, 3, 5),
        BufferLifetime("k4_out", 2 * 8 * 8 * 4, 4, 5),
        BufferLifetime("k5_out", 2 * 8 * 8 * 4, 5, 7),
        BufferLifetime("k6_out", 2 * 8 * 16 * 4, 6, 8),
        BufferLifetime("k7_out", 2 * 8 * 16 * 4, 7, 8),
        BufferLifetime("k8_out", 2 * 8 * 16, 8, 8),  # the graph output
    ]
    assert list(graph.buffers) == expected
    planner = get_planner("greedy")
    assert planner.plan(list(graph.buffers)).arena_bytes == planner.plan(expected).arena_bytes
    hand_peak = 512 + 1024 + 1024  # step 7: row lerp + both column takes
    assert planner.plan(expected).lower_bound_bytes == hand_peak


def test_pad_kernel_only_before_padded_convs_of_unsigned_inputs():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, 1, 1), nn.ReLU(),  # signed input: no pad
                        nn.Conv2d(4, 4, 3, 1, 1, groups=4), nn.ReLU(),  # unsigned: pad
                        nn.Conv2d(4, 4, 1), nn.Conv2d(4, 2, 3, 1, 1))  # signed: no pad
    graph = module_graph(net, (1, 3, 8, 8))
    assert graph.kernels == ("conv", "pad", "conv", "conv", "conv")
    assert graph.buffers[2] == BufferLifetime("k1_out", 4 * 10 * 10, 1, 2)
    assert module_graph(net, (1, 3, 8, 8), act_signed=True).kernels == ("conv",) * 4


def test_profile_matches_planner_and_counts():
    space = get_space(SPACE)
    hw = HardwareCostModel(space, get_target("host"), SIZE, num_classes=4)
    cfg = space.sample(np.random.default_rng(1))
    prof = hw.profile(cfg)
    graph = hw.graph(cfg)
    assert prof.sram_bytes == get_planner("greedy").plan(list(graph.buffers)).arena_bytes
    assert prof.sram_bytes >= prof.sram_lower_bound_bytes > 0
    assert prof.macs == total_macs(space.layer_specs(cfg, SIZE, 4))
    # flash against the real extracted subnet's conv weights
    subnet = space.build_supernet(4).extract(cfg)
    convs = [m for m in subnet.modules() if isinstance(m, nn.Conv2d)]
    weights = sum(m.weight.numel() for m in convs)
    per_channel = sum(m.out_channels for m in convs) * (BIAS_BYTES + REQUANT_BYTES_PER_CHANNEL)
    assert prof.flash_bytes == weights + per_channel
    assert hw.profile(cfg) is prof  # cached


def test_sram_grows_with_resolution_and_largest_activation_bounds_it():
    space = get_space(SPACE)
    cfg = space.max_config()
    small = HardwareCostModel(space, get_target("host"), (32, 64), 4).profile(cfg)
    large = HardwareCostModel(space, get_target("host"), (64, 128), 4).profile(cfg)
    assert large.sram_bytes > small.sram_bytes
    specs = space.layer_specs(cfg, (64, 128), 4)
    biggest = max(s.output_elements for s in specs if s.op != "act")
    assert large.sram_bytes >= biggest


def test_profile_is_fast_enough_for_search():
    space = get_space(SPACE)
    hw = HardwareCostModel(space, get_target("host"), SIZE, num_classes=4)
    rng = np.random.default_rng(0)
    hw.profile(space.sample(rng))  # warm the meta supernet
    cfgs = [space.sample(rng) for _ in range(5)]
    start = time.perf_counter()
    for cfg in cfgs:
        hw.profile(cfg)
    per_subnet = (time.perf_counter() - start) / len(cfgs)
    assert per_subnet < 1.0  # ~0.1 s on an idle core; generous for shared CI machines


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


ARENA_SUBNETS = (  # (space, which): min / seed config, or a seeded `space.sample`
    (SPACE, "min"), (SPACE, "seed"), (SPACE, 1), (SPACE, 2), ("mbv2-deeplab", "min"))


def _config(space, which):
    if which == "min":
        return space.min_config()
    if which == "seed":
        return space.seed_config()
    return space.sample(np.random.default_rng(which))


def _compiled_plan(space, cfg, project):
    """(arena bytes, arena buffers as (size, first, last)) of `cfg` compiled for the host.

    A project directory that already holds a complete compile (``compile.json``) of the
    same architecture is reused (point ``QANAS_ARENA_PROJECTS`` at a directory to keep
    them between runs); otherwise the subnet is quantized, exported and compiled.
    """
    import json

    from compiler.driver import compile_model
    from qanas.quant.brevitas_quant import calibrate, quantize_model
    from qanas.quant.export import export_qdq

    stamp = project / "arch.txt"
    if (project / "compile.json").exists() and stamp.exists() and stamp.read_text() == cfg.to_str():
        plan = json.loads((project / "plan.json").read_text())
        buffers = [(b["size"], b["first"], b["last"]) for b in plan["buffers"]
                   if b["kind"] != "constant"]
        return plan["memory"]["arena_bytes"], sorted(buffers)
    torch.manual_seed(0)
    net = space.build_supernet(4).eval()
    x = torch.randn(1, 3, *SIZE)
    qmodel = quantize_model(net.extract(cfg).eval())
    calibrate(qmodel, [x])
    project.mkdir(parents=True, exist_ok=True)
    onnx_path = export_qdq(qmodel, x, project.parent / f"{project.name}.onnx")
    result = compile_model(onnx_path, "host", project, force=True)
    stamp.write_text(cfg.to_str())
    return result.arena_bytes, sorted((b.size, b.first, b.last) for b in result.plan.lifetimes())


@pytest.mark.slow
def test_estimate_against_compiled_arena(tmp_path_factory):
    """The estimate equals `compile_model`'s arena: the same buffers, sizes and lifetimes."""
    import os
    from pathlib import Path

    root = Path(os.environ.get("QANAS_ARENA_PROJECTS") or tmp_path_factory.mktemp("arena"))
    report, pairs, mismatched = [], [], []
    for space_name, which in ARENA_SUBNETS:
        space = get_space(space_name)
        cfg = _config(space, which)
        arena, compiled = _compiled_plan(space, cfg, root / f"{space_name}-{which}")
        hw = HardwareCostModel(space, get_target("host"), SIZE, num_classes=4)
        start = time.perf_counter()
        graph = hw.graph(cfg)
        estimate = hw.profile(cfg).sram_bytes
        ms = (time.perf_counter() - start) * 1e3
        error = (estimate - arena) / arena
        pairs.append((estimate, arena))
        report.append(f"{space_name} {which}: estimate {estimate} B, compiled arena {arena} B, "
                      f"error {error:+.2%}, {len(graph.buffers)} buffers, {ms:.0f} ms")
        print(report[-1])
        if sorted((b.size, b.first, b.last) for b in graph.buffers) != compiled:
            mismatched.append(f"{space_name} {which}")
    assert all(est == arena for est, arena in pairs), "\n".join(report)
    assert not mismatched, f"buffer sets differ from the compiled plan for {mismatched}"


def test_every_registered_target_has_latency_coefficients():
    from targets import get_target, list_targets

    for name in list_targets():
        target = get_target(name)
        assert coefficients_for(target.cpu, target.isa).name in (target.cpu, target.isa), name
