"""Weight bits as search decisions: `WeightBitsSpace`, its strings, costs, scoring and sampling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from qanas.errors import ConfigError
from qanas.space import get_space
from qanas.space.base import SubnetConfig
from qanas.space.bits import MixedPrecisionConfig, WeightBitsSpace, parse_config, with_bits
from qanas.space.layer_bits import conv_layers, fused_convs, searchable_layers
from qanas.supernet import build_supernet

SIZE, CLASSES = (64, 128), 4


@pytest.fixture(scope="module")
def space():
    return WeightBitsSpace(get_space("squeezenas-small"), SIZE, CLASSES)


@pytest.mark.parametrize("name", ["squeezenas-small", "mbv2-deeplab"])
def test_layer_specs_list_the_subnet_convs_in_definition_order(name):
    base = get_space(name)
    supernet = build_supernet(base, CLASSES)
    for cfg in (base.min_config(), base.sample(np.random.default_rng(5))):
        convs = [m for m in supernet.extract(cfg).modules() if isinstance(m, torch.nn.Conv2d)]
        specs = conv_layers(base.layer_specs(cfg, SIZE, CLASSES))
        assert [(m.in_channels, m.out_channels, m.kernel_size, m.groups) for m in convs] == \
               [(s.in_channels, s.out_channels, s.kernel, s.groups) for s in specs]


def test_vectors_strings_and_int8_default(space):
    base_decisions = len(space.base.decisions)
    assert len(space.decisions) == base_decisions + space.slots
    rng = np.random.default_rng(0)
    seen_mixed = 0
    for _ in range(20):
        cfg = space.sample(rng)
        assert space.decode(space.encode(cfg)) == cfg
        assert parse_config(cfg.to_str()) == cfg
        assert space.resolve(cfg.to_str()) == cfg
        seen_mixed += isinstance(cfg, MixedPrecisionConfig)
    assert seen_mixed == 20
    zero = space.decode(np.zeros(len(space.decisions), dtype=np.int64))
    assert type(zero) is SubnetConfig  # all int8: the architecture's string, no suffix
    assert zero.to_str() == space.base.decode(np.zeros(base_decisions)).to_str()


def test_unused_slots_decode_to_one_config(space):
    arch = space.base.min_config()
    used = space.slot_count(arch)
    assert used < space.slots
    vec = space.encode(with_bits(arch, [4] * used))
    other = vec.copy()
    other[len(space.base.decisions) + used:] = 1
    assert space.decode(vec) == space.decode(other)


def test_wrong_digit_count_names_the_fix(space):
    arch = space.base.min_config()
    with pytest.raises(ConfigError, match="searchable convs"):
        space.resolve(arch.to_str() + "@w4")
    with pytest.raises(ConfigError, match="8 or 4"):
        parse_config(arch.to_str() + "@w2")


def test_flash_counts_packed_int4_weights(space):
    from compiler.kernels.packing_s4 import row_bytes
    from qanas.cost.hardware import flash_bytes
    from qanas.search.bits import BitsCostModel
    from targets import get_target

    class Arch:
        target = get_target("host")

        def profile(self, cfg):
            from qanas.cost.hardware import HardwareProfile, Latency

            specs = space.base.layer_specs(cfg, SIZE, CLASSES)
            return HardwareProfile(0, 0, flash_bytes(specs), 0, 0, Latency(0.0, "cycles", "x"))

        def budgets(self):
            return {}

    model = BitsCostModel(Arch(), space)
    arch = space.base.seed_config()
    specs = space.base.layer_specs(arch, SIZE, CLASSES)
    slots = searchable_layers(specs, CLASSES)
    convs = conv_layers(specs)
    fused = fused_convs(specs)
    assert not any(c.groups == c.in_channels > 1 for c in (convs[i] for i in slots))  # no depthwise

    def saved(slot: int) -> int:
        bits = [4 if s == slot else 8 for s in slots]
        return model.profile(arch).flash_bytes - model.profile(with_bits(arch, bits)).flash_bytes

    def packed_saving(slot: int) -> int:
        c = convs[slot]
        depth = c.kernel[0] * c.kernel[1] * c.in_channels // c.groups
        return c.out_channels * (depth - row_bytes(depth))

    unfused = next(s for s in slots if convs[s].name not in fused)
    assert saved(unfused) == packed_saving(unfused) > 0  # packed rows
    in_block = next(s for s in slots if convs[s].name in fused)
    assert saved(in_block) == packed_saving(in_block) > 0  # the fused kernel's int4 stages
    all4 = model.profile(with_bits(arch, [4] * len(slots))).flash_bytes
    assert all4 < model.profile(arch).flash_bytes


def test_ethos_u_targets_refuse_w4w8():
    from qanas.search.bits import check_bits
    from targets import get_target

    with pytest.raises(ConfigError, match="Vela compiles int8 weights only"):
        check_bits("w4w8", get_target("ethos-u55-128"))
    check_bits("w8", get_target("ethos-u55-128"))
    check_bits("w4w8", get_target("host"))
    with pytest.raises(ConfigError, match="choose one of"):
        check_bits("w2", get_target("host"))


def test_fairnas_draws_bit_decisions_fairly(space):
    from qanas.train.samplers import FairNASSampler

    sampler = FairNASSampler(space, seed=1)
    steps = 4
    for _ in range(steps):
        before = [c.copy() for c in sampler.counts]
        paths = sampler.next_paths()
        first_slot = len(space.base.decisions)  # used by every subnet: drawn, never repaired
        per_step = sampler.counts[first_slot] - before[first_slot]
        m = len(paths)
        assert sorted(per_step.tolist()) == sorted([m // 2, m - m // 2])
    assert [len(c) for c in sampler.counts] == [d.size for d in space.decisions]


def test_evaluator_scores_with_the_configs_bits(space):
    from qanas.quant import QuantSpec
    from qanas.score import SubnetScorer
    from qanas.search.bits import BitsEvaluator

    torch.manual_seed(0)
    supernet = build_supernet(space.base, CLASSES)
    gen = torch.Generator().manual_seed(0)
    batches = tuple((torch.randn(2, 3, 32, 64, generator=gen),
                     torch.randint(0, CLASSES, (2, 32, 64), generator=gen)) for _ in range(2))
    scorer = SubnetScorer(supernet, batches, batches, QuantSpec(), image_size=(32, 64))
    small = WeightBitsSpace(space.base, (32, 64), CLASSES)
    evaluator = BitsEvaluator(scorer, small)
    arch = small.base.seed_config()
    int8 = evaluator.score(arch)
    assert int8["miou"] == scorer.score(arch).miou
    cfg = with_bits(arch, [4, 8] * (small.slot_count(arch) // 2) + [4] * (small.slot_count(arch) % 2))
    mixed = evaluator.score(cfg)
    assert mixed["weight_bits"] == list(cfg.weight_bits)
    assert mixed["miou_fp32"] == int8["miou_fp32"]
    assert scorer.spec == QuantSpec()  # the mixed score passes its own spec
    brevitas = SubnetScorer(supernet, batches, batches, QuantSpec(), image_size=(32, 64),
                            engine="brevitas")
    assert BitsEvaluator(brevitas, small).score(cfg)["miou"] == mixed["miou"]


def test_coordinate_descent_moves_bit_decisions(space):
    from qanas.search.coordinate_descent import _neighbours

    arch = space.base.seed_config()
    first_slot = len(space.base.decisions)
    (flipped,) = _neighbours(space, arch, first_slot)
    assert flipped.weight_bits == (4,) + (8,) * (space.slot_count(arch) - 1)
    back = _neighbours(space, flipped, first_slot)
    assert back == [arch]
