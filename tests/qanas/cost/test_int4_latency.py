"""Latency of 4-bit weights: which convs run on the int4 kernels, the bit-aware analytic
model, and the search's cost model over the analytic model and an int8 latency table."""

from __future__ import annotations

import json
import logging

import pytest

from qanas.cost import AnalyticLatencyModel, HardwareProfile
from qanas.cost.int4_latency import int4_extra_cycles
from qanas.search.bits import BitsCostModel
from qanas.space import get_space
from qanas.space.bits import WeightBitsSpace, with_bits
from qanas.space.layer_bits import (
    fused_blocks,
    fused_convs,
    int4_kernel_layers,
    int4_step_layers,
    layer_bit_widths,
)
from targets import get_target
from targets.latency import (
    COEFFICIENTS_PATH,
    FUSED_POINTWISE,
    INT4_CLASSES,
    analytic_cycles,
    coefficients_for,
    layer_class,
)

SPACE, SIZE, CLASSES = "squeezenas-small", (64, 128), 6
FITTED = ("cortex-m4", "cortex-m7", "cortex-m55")


@pytest.fixture(scope="module")
def space():
    return WeightBitsSpace(get_space(SPACE), SIZE, CLASSES)


def all_four(space, which: str):
    """(config, descriptors, widths) of `which` with every searchable conv at 4 bits."""
    arch = space.base.resolve(which)
    specs = space.layer_specs(arch, SIZE, CLASSES)
    cfg = with_bits(arch, [4] * space.slot_count(arch))
    return cfg, specs, layer_bit_widths(specs, CLASSES, cfg.weight_bits)


class ArchitectureCosts:
    """The architecture's profile with a real latency model's figure (other costs zero)."""

    def __init__(self, target, latency_model):
        self.target, self.latency_model = target, latency_model

    def profile(self, cfg):
        return HardwareProfile(0, 0, 0, 0, 0, self.latency_model.predict(cfg))

    def budgets(self):
        return {}


def test_every_4bit_conv_runs_on_int4_kernels_fused_or_not(space):
    _, specs, widths = all_four(space, "min")
    on_int4 = int4_kernel_layers(specs, widths)
    fused = fused_convs(specs)
    assert fused == {"blocks.16.expand", "blocks.16.dw", "blocks.16.project"}
    assert fused_blocks(specs) == [["blocks.16.expand", "blocks.16.dw", "blocks.16.project"]]
    assert set(on_int4) & fused == {"blocks.16.expand", "blocks.16.project"}
    assert {"head", "decoder.cbr"} <= set(on_int4)
    steps = int4_step_layers(specs, widths)
    assert steps == [n for n in on_int4 if n not in fused] and "head" in steps
    by_name = {layer.name: layer for layer in specs}
    assert {layer_class(by_name[n]) for n in on_int4} <= set(INT4_CLASSES)
    assert int4_kernel_layers(specs, [8] * len(widths)) == []


@pytest.mark.parametrize("target", FITTED)
@pytest.mark.parametrize("which", ["seed", "min"])
def test_4bit_convs_are_priced_at_the_fitted_int4_rates(space, target, which):
    coeffs = coefficients_for(target, optimise="speed")  # the paired runs' mode
    _, specs, widths = all_four(space, which)
    on_int4 = int4_kernel_layers(specs, widths)
    fused = fused_convs(specs)
    int8 = analytic_cycles(specs, coeffs)
    int4 = analytic_cycles(specs, coeffs, on_int4, fused)
    rates = coeffs.int4_macs_per_cycle
    by_name = {layer.name: layer for layer in specs}
    rate_of = {n: rates[FUSED_POINTWISE if n in fused else layer_class(by_name[n])]
               for n in on_int4}
    expected = sum(by_name[n].macs / rate_of[n]
                   - by_name[n].macs / coeffs.macs_per_cycle[layer_class(by_name[n])]
                   for n in on_int4)
    assert int4 - int8 == pytest.approx(expected, rel=1e-9)
    assert int4 - int8 == pytest.approx(int4_extra_cycles(specs, on_int4, coeffs), rel=1e-9)
    # the fused stages cost more on the int4 kernels than a conv with a step of its own
    assert rates[FUSED_POINTWISE] < rates["pointwise"]
    # the direction the paired QEMU runs of this subnet measured (targets/latency_coefficients.json)
    fit = json.loads(COEFFICIENTS_PATH.read_text())["int4"][target]
    row = next(r for r in fit["subnets"] if r["which"] == f"{which}@w4")
    measured = row["measured_int4_steps"] - row["measured_int8_steps"]
    assert (int4 - int8 > 0) == (measured > 0), (int4 - int8, measured)


def test_the_search_prices_a_mixed_subnet_with_the_int4_rates(space):
    target = get_target("cortex-m7")
    analytic = AnalyticLatencyModel(space.base, target, SIZE, CLASSES)
    model = BitsCostModel(ArchitectureCosts(target, analytic), space)
    cfg, specs, widths = all_four(space, "seed")
    latency = model.profile(cfg).latency
    coeffs = coefficients_for("cortex-m7")
    assert latency.value == pytest.approx(
        analytic_cycles(specs, coeffs, int4_kernel_layers(specs, widths), fused_convs(specs)))
    assert latency.source == analytic.source
    assert latency.value != model.profile(cfg.arch).latency.value
    assert model.profile(cfg.arch).latency == analytic.predict(cfg.arch)


def test_an_int8_latency_table_is_corrected_by_the_int4_difference(space, caplog):
    from qanas.cost.lut.committed import latency_lut_model

    target = get_target("cortex-m7")
    table, path = latency_lut_model(space.base, target.name, SIZE, CLASSES)
    assert path is not None, "the committed cortex-m7 table of this setting"
    model = BitsCostModel(ArchitectureCosts(target, table), space)
    cfg, specs, widths = all_four(space, "seed")
    with caplog.at_level(logging.WARNING, logger="qanas.cost.int4_latency"):
        latency = model.profile(cfg).latency
        model.profile(cfg)
    extra = int4_extra_cycles(specs, int4_kernel_layers(specs, widths),
                              coefficients_for("cortex-m7"))
    assert extra != 0
    assert latency.value == pytest.approx(table.predict(cfg.arch).value + extra)
    assert latency.source == f"{table.source}+int4:analytic:cortex-m7"
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "measures int8 kernels only" in warnings[0]


def test_a_cpu_without_int4_rates_prices_4bit_convs_as_int8(space, caplog):
    target = get_target("host")
    analytic = AnalyticLatencyModel(space.base, target, SIZE, CLASSES)
    assert not analytic.coeffs.int4_macs_per_cycle
    model = BitsCostModel(ArchitectureCosts(target, analytic), space)
    cfg, _, _ = all_four(space, "min")
    with caplog.at_level(logging.WARNING, logger="qanas.cost.int4_latency"):
        assert model.profile(cfg).latency == analytic.predict(cfg.arch)
    assert "priced as int8" in caplog.text


@pytest.mark.slow
@pytest.mark.parametrize("name", ["squeezenas-small", "mbv2-deeplab"])
def test_the_compiler_runs_exactly_the_modelled_convs_on_int4_kernels(name, tmp_path):
    from compiler.driver import compile_model
    from tests.support.firmware_util import export_subnet

    size = (32, 64)
    space = WeightBitsSpace(get_space(name), size, CLASSES)
    arch = space.base.resolve("min")
    specs = space.layer_specs(arch, size, CLASSES)
    cfg = with_bits(arch, [4] * space.slot_count(arch))
    on_int4 = int4_step_layers(specs, layer_bit_widths(specs, CLASSES, cfg.weight_bits))
    onnx_path = export_subnet(space.base, str(cfg), tmp_path / "w4.onnx", size, CLASSES)
    result = compile_model(str(onnx_path), "host", tmp_path / "project", optimise="speed")
    kernels = json.loads((result.out_dir / "compile.json").read_text())["kernel_implementations"]
    assert sum(k.endswith("_s4") for k in kernels) == len(on_int4) > 0, (kernels, on_int4)
