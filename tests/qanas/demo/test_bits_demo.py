"""Mixed precision in the demo and the report: `qanas demo --bits w4w8`'s search objectives
and NPU stage, the chosen subnet's per-conv bits and weight bytes, and a scorer given a
spec per score (`SubnetScorer.score(spec=)`)."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from qanas.space import get_space
from qanas.space.bits import WeightBitsSpace, with_bits
from qanas.supernet import build_supernet

SPACE = "squeezenas-small"
SIZE = (32, 64)
CLASSES = 6


def seeded_supernet():
    """The mixed-precision space, a seeded supernet of it and two seeded (image, label) batches."""
    space = WeightBitsSpace(get_space(SPACE), SIZE, CLASSES)
    torch.manual_seed(0)
    supernet = build_supernet(space, CLASSES)
    gen = torch.Generator().manual_seed(0)
    batches = tuple((torch.randn(2, 3, *SIZE, generator=gen),
                     torch.randint(0, CLASSES, (2, *SIZE), generator=gen)) for _ in range(2))
    return space, supernet, batches


@pytest.fixture(scope="module")
def mixed_min() -> str:
    """squeezenas-small's smallest subnet with its searchable convs alternating 4 and 8 bits."""
    space = WeightBitsSpace(get_space(SPACE), SIZE, CLASSES)
    arch = space.min_config()
    slots = space.slot_count(arch)
    return with_bits(arch, [4 if i % 2 == 0 else 8 for i in range(slots)]).to_str()


def test_demo_searches_flash_and_skips_vela_for_int4(mixed_min, capsys):
    from qanas.demo.config import DemoConfig
    from qanas.demo.run import npu_target_for
    from qanas.demo.search import OBJECTIVES, demo_objectives

    assert demo_objectives("w8") == OBJECTIVES
    assert demo_objectives("w4w8") == (*OBJECTIVES, "flash")
    config = DemoConfig(bits="w4w8")
    plain = get_space(SPACE).min_config().to_str()
    assert npu_target_for(config, plain) == config.npu_target
    assert npu_target_for(config, mixed_min) is None
    assert "int8 weights only" in capsys.readouterr().err
    assert npu_target_for(dataclasses.replace(config, npu_target=None), plain) is None


def test_report_lists_each_convs_bits_and_weight_bytes(mixed_min, tmp_path):
    from qanas.report.architecture import subnet_conv_bits
    from qanas.report.load import RunData
    from qanas.report.sections_model import chosen_section
    from qanas.space.layer_bits import conv_layers, int4_kernel_layers, weight_bytes

    convs = subnet_conv_bits(mixed_min, SIZE, CLASSES)
    digits = mixed_min.split("@w")[1]
    assert sum(c.bits == 4 for c in convs) == digits.count("4")
    assert convs[0].bits == 8 and convs[-1].bits == 8  # the stem and the classifier
    specs = conv_layers(get_space(SPACE).layer_specs(get_space(SPACE).min_config(), SIZE, CLASSES))
    packed = set(int4_kernel_layers(specs, [c.bits for c in convs]))
    assert packed == {c.name for c in convs if c.bits == 4}  # fused ones too
    for c in convs:
        assert c.weight_bytes_int8 == c.in_channels // c.groups * c.kernel[0] * c.kernel[1] \
            * c.out_channels
        assert (c.weight_bytes < c.weight_bytes_int8) == (c.name in packed)
    assert sum(c.weight_bytes for c in convs) == sum(
        weight_bytes(s, 4 if s.name in packed else 8) for s in specs)
    assert subnet_conv_bits(mixed_min.split("@w")[0], SIZE, CLASSES) == []

    run = RunData(tmp_path, {"chosen": {"arch": mixed_min, "weights_bytes": 12_345},
                             "protocol": {"image_size": list(SIZE), "num_classes": CLASSES}})
    section = chosen_section(run)
    table = next(t for t in section.tables if "weight bits" in t.headers)
    assert len(table.rows) == len(convs) + 1
    assert table.rows[-1][4] == f"{digits.count('4')} at 4"
    assert table.rows[-1][5] == f"{sum(c.weight_bytes for c in convs):,}"
    assert "12,345 B" in table.caption
    plain = RunData(tmp_path, {"chosen": {"arch": mixed_min.split("@w")[0]},
                               "protocol": {"image_size": list(SIZE), "num_classes": CLASSES}})
    assert not any("weight bits" in t.headers for t in chosen_section(plain).tables)


def test_scorer_quantizes_with_the_spec_of_each_score(mixed_min):
    from qanas.quant import QuantSpec
    from qanas.quant.layer_bits import layer_weight_bits
    from qanas.score import SubnetScorer
    from qanas.space.bits import parse_config

    space, supernet, batches = seeded_supernet()
    cfg = parse_config(mixed_min)
    layers = layer_weight_bits(cfg, supernet.extract(cfg.arch), space)
    mixed_spec = QuantSpec(layer_weight_bits=layers)
    scorer = SubnetScorer(supernet, batches, batches, QuantSpec(), image_size=SIZE)
    mixed = scorer.score(cfg.arch, spec=mixed_spec)
    assert mixed.quant == mixed_spec.to_dict() and scorer.spec == QuantSpec()
    int8 = scorer.score(cfg.arch)
    assert int8.quant == QuantSpec().to_dict() and int8.miou_fp32 == mixed.miou_fp32
    uniform = SubnetScorer(supernet, batches, batches, mixed_spec, image_size=SIZE)
    assert uniform.score(cfg.arch).miou == mixed.miou
    float_only = SubnetScorer(supernet, batches, batches, None, image_size=SIZE)
    assert float_only.score(cfg.arch, spec=mixed_spec).miou == mixed.miou


@pytest.mark.slow
@pytest.mark.toolchain
def test_latency_check_compiles_a_mixed_subnet_with_its_bits(mixed_min, tmp_path):
    from types import SimpleNamespace

    from qanas.cost import HardwareCostModel
    from qanas.demo.latency import validate_latency
    from qanas.quant import QuantSpec
    from qanas.score import SubnetScorer
    from qanas.search.bits import BitsCostModel
    from qanas.space.bits import parse_config
    from targets import get_target

    space, supernet, batches = seeded_supernet()
    scorer = SubnetScorer(supernet, batches, batches, QuantSpec(), image_size=SIZE)
    target = get_target("cortex-m4")
    hw = BitsCostModel(HardwareCostModel(space.base, target, SIZE, CLASSES, optimise="speed"),
                       space)
    check = validate_latency([SimpleNamespace(arch=mixed_min)], scorer, hw, target.name,
                             tmp_path, batches[0][0][:1], "speed")
    cfg = parse_config(mixed_min)
    assert check["rows"][0]["predicted"] == hw.profile(cfg).latency.value
    assert hw.profile(cfg).latency.value != hw.profile(cfg.arch).latency.value
    sources = "".join(p.read_text() for p in (tmp_path / "subnet0").rglob("*.c"))
    assert "qanas_pointwise_conv_s4" in sources  # compiled with its 4-bit weights
