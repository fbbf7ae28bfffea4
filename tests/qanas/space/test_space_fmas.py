"""`fmas-mbv2`: keep rule, exact cardinality, group transitions, stride-3 sizes, pretrained init,
the paper's seed costs and the refusal of checkpoints of the earlier space.

The generic supernet/extract/cost/ONNX checks run over this space in
`test_space_mbv2.py`; the reference MobileNetV2 in torchvision's layout lives there too.
"""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from qanas.errors import CheckpointError
from qanas.space import SubnetConfig, get_space
from qanas.space.fmas_mbv2 import GROUPS
from qanas.space.mbv2_layout import MBV2Layout
from qanas.supernet import build_supernet
from qanas.supernet.blocks import InvertedResidual
from qanas.supernet.mbv2 import MobileNetV2Supernet
from qanas.supernet.pretrained import load_mobilenet_v2_state_dict
from qanas.train.checkpoint import load_supernet, save_checkpoint
from targets.cost import total_macs, total_params
from tests.support.mbv2_reference import randomize_bn, reference_state_dict

SPACE = get_space("fmas-mbv2")


def with_labels(cfg: SubnetConfig, **labels: str) -> SubnetConfig:
    """`cfg` with some decisions set by label."""
    choices = list(cfg.choices)
    for name, label in labels.items():
        decision = SPACE.decisions[SPACE.index(name)]
        choices[SPACE.index(name)] = decision.options.index(label)
    return SubnetConfig(SPACE.name, tuple(choices))


def test_cardinality_counts_valid_keep_patterns_exactly():
    keep_names = [d.name for d in SPACE.decisions if d.name.startswith("k")]
    base = list(SPACE.seed_config().choices)
    valid = 0
    for bits in itertools.product((0, 1), repeat=len(keep_names)):
        choices = list(base)
        for name, bit in zip(keep_names, bits, strict=True):
            choices[SPACE.index(name)] = bit
        valid += SPACE.is_valid(SubnetConfig(SPACE.name, tuple(choices)))
    others = np.prod([d.size for d in SPACE.decisions if not d.name.startswith("k")])
    assert SPACE.cardinality == valid * int(others)
    assert valid < 2 ** len(keep_names)


def test_repair_keeps_first_layer_of_an_emptied_group():
    all_dropped = with_labels(SPACE.max_config(), k4="drop", k5="drop", k6="drop")
    assert not SPACE.is_valid(all_dropped)
    repaired = SPACE.decode(np.asarray(all_dropped.choices))
    assert repaired == with_labels(all_dropped, k4="keep")
    with pytest.raises(ValueError):
        SPACE.validate(all_dropped)


def test_dropping_first_layer_moves_the_transition():
    cfg = with_labels(SPACE.seed_config(), k2="drop", s2="s3")
    blocks = SPACE.plan(cfg).blocks
    first = next(b for b in blocks if b.index == 3)
    assert (first.in_ch, first.stride) == (16, 3)
    assert all(b.index != 2 for b in blocks)
    net = build_supernet(SPACE, 3).eval()
    randomize_bn(net)
    model = net.extract(cfg).eval()
    ir = [m for m in model.modules() if isinstance(m, InvertedResidual)]
    assert (ir[1].conv[0][0].in_channels, ir[1].conv[1][0].stride, ir[1].use_res) == (16, (3, 3), False)
    net.set_active(cfg)
    x = torch.randn(1, 3, 32, 48)
    with torch.no_grad():
        torch.testing.assert_close(model(x), net(x), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("size", [(32, 32), (33, 47)])
def test_stride_three_sizes_and_smallest_inputs(size):
    cfg = SPACE.min_config()
    specs = SPACE.layer_specs(cfg, size)
    encoder_out = [s for s in specs if s.name.startswith("features.17.project")][0].out_hw
    h, w = size
    for stride in (2, 3, 3, 2, 2):  # stem, s2, s4, s7, s14
        h, w = -(-h // stride), -(-w // stride)
    assert encoder_out == (h, w) and min(encoder_out) >= 1
    net = build_supernet(SPACE, 3).eval()
    with torch.no_grad():
        assert net.extract(cfg).eval()(torch.zeros(1, 3, *size)).shape == (1, 3, *size)


def test_seed_and_plain_mobilenet_v2_reproduce_reference_encoders():
    net = build_supernet(SPACE, 3).eval()
    x = torch.randn(1, 3, 64, 64)
    # Plain MobileNetV2 (output stride 32) and the paper's output-stride-8 seed.
    plain = {f"d{i}": "d1" for i in range(12, 18)}
    seed_overrides = {7: (1, 1), 12: (1, 2), 13: (1, 2), 14: (1, 2), 15: (1, 4), 16: (1, 4), 17: (1, 4)}
    cases = [
        (with_labels(SPACE.seed_config(), s7="s2", s14="s2", **plain), None),
        (SPACE.seed_config(), seed_overrides),
    ]
    for cfg, overrides in cases:
        ref, state = reference_state_dict(overrides)
        assert load_mobilenet_v2_state_dict(net, state).missing == []
        with torch.no_grad():
            torch.testing.assert_close(net.extract(cfg).eval().encode(x), ref.encoder(x), atol=1e-5, rtol=1e-5)


def test_decisions_follow_the_fmas_description():
    sizes = {d.name: d.options for d in SPACE.decisions}
    assert sizes["s2"] == sizes["s4"] == ("s2", "s3")
    assert sizes["s7"] == sizes["s14"] == ("s1", "s2")
    assert all(sizes[f"d{i}"] == ("d1", "d2") for i in (12, 13, 14))
    assert all(sizes[f"d{i}"] == ("d1", "d2", "d3", "d4") for i in (15, 16, 17))
    assert [w for w, _, _ in GROUPS] == [24, 32, 64, 96, 160]
    assert sum(name.startswith("k") for name in sizes) == sum(len(idxs) for _, idxs, _ in GROUPS)


def test_seed_reaches_output_stride_eight_with_the_papers_strides_and_dilations():
    plan = SPACE.plan(SPACE.seed_config())
    first = {b.index: (b.stride, b.dilation) for b in plan.blocks}
    assert [first[i][0] for i in (2, 4, 7, 14)] == [2, 2, 1, 1]
    assert [first[i][1] for i in range(12, 18)] == [2, 2, 2, 4, 4, 4]
    specs = SPACE.layer_specs(SPACE.seed_config(), (64, 64))
    assert [s for s in specs if s.name == "features.17.project"][0].out_hw == (8, 8)


@pytest.mark.parametrize(("arch", "gmacs", "mparams"), [("seed", 9.73, 2.14)])
def test_published_costs_within_ten_percent(arch, gmacs, mparams):
    """FMAS reports FLOPs that are MACs, at 513x513 on PASCAL VOC (21 classes)."""
    specs = SPACE.layer_specs(SPACE.resolve(arch), (513, 513), num_classes=21)
    assert total_macs(specs) / 1e9 == pytest.approx(gmacs, rel=0.10)
    assert total_params(specs) / 1e6 == pytest.approx(mparams, rel=0.10)


def test_checkpoint_of_the_earlier_space_is_refused_with_the_fix(tmp_path):
    """The earlier fmas-mbv2 had a DeepLabV3 ASPP head: its weights do not fit this supernet."""
    current = SPACE.layout()
    earlier = MBV2Layout(current.slots, aspp_channels=256, lraspp_channels=None)
    old = MobileNetV2Supernet(SPACE, 21, earlier)
    path = save_checkpoint(tmp_path / "supernet.pt", {
        "space": SPACE.name, "num_classes": 21, "image_size": [64, 64], "dataset": "voc",
        "model": old.state_dict(), "epoch": 1, "config": {}, "history": []})
    with pytest.raises(CheckpointError, match="space definition changed.*retrain with `qanas train-supernet`"):
        load_supernet(path)
