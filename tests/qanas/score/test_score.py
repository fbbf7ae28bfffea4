"""Scoring: BN recalibration, mIoU against a hand calculation, end-to-end subnet scoring."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from qanas.quant import QuantSpec
from qanas.quant.toy import ToySegNet
from qanas.score import evaluate_miou, recalibrate_bn
from qanas.supernet import build_supernet


class _Fixed(nn.Module):
    """Returns given logits regardless of the input."""

    def __init__(self, logits: torch.Tensor):
        super().__init__()
        self.logits = logits

    def forward(self, x):
        return self.logits


def test_evaluate_miou_matches_hand_calculation():
    # prediction / target on 6 pixels, 3 classes, one ignored pixel.
    pred = torch.tensor([[[0, 0, 1], [1, 2, 2]]])
    target = torch.tensor([[[0, 1, 1], [1, 2, 255]]])
    logits = torch.nn.functional.one_hot(pred, 3).permute(0, 3, 1, 2).float()
    out = evaluate_miou(_Fixed(logits), [(torch.zeros(1, 3, 2, 3), target)], num_classes=3)
    # class 0: tp 1, fp 1, fn 0 -> 1/2; class 1: tp 2, fp 0, fn 1 -> 2/3; class 2: tp 1 -> 1/1
    expected = [1 / 2, 2 / 3, 1.0]
    assert out["per_class_iou"] == pytest.approx(expected)
    assert out["miou"] == pytest.approx(sum(expected) / 3)
    assert out["num_pixels"] == 5 and out["batches"] == 1


def test_evaluate_miou_max_batches_and_absent_classes():
    logits = torch.zeros(1, 4, 2, 2)
    logits[:, 0] = 1.0
    batch = (torch.zeros(1, 3, 2, 2), torch.zeros(1, 2, 2, dtype=torch.long))
    out = evaluate_miou(_Fixed(logits), [batch] * 3, num_classes=4, max_batches=2)
    assert out["batches"] == 2 and out["miou"] == 1.0
    assert out["per_class_iou"][1:] == [None, None, None]


def _batches(n: int, seed: int, shift: float) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    return [(torch.randn(4, 3, 16, 16, generator=gen) * 2 + shift,
             torch.randint(0, 3, (4, 16, 16), generator=gen)) for _ in range(n)]


def test_recalibrate_bn_changes_stats_and_fixes_miscalibrated_model():
    torch.manual_seed(0)
    net = ToySegNet(num_classes=3, image_size=(16, 16))
    data = _batches(4, 0, shift=1.5)
    # Reference: statistics estimated on all of the data (what a well-calibrated model has).
    reference = ToySegNet(num_classes=3, image_size=(16, 16))
    reference.load_state_dict(net.state_dict())
    assert recalibrate_bn(reference, data) == 4
    # Mis-calibrate: default stats (mean 0, var 1) do not match the shifted inputs.
    x = torch.cat([b[0] for b in data])
    with torch.no_grad():
        before = (net.eval()(x) - reference(x)).abs().mean()
        stem_bn = net.stem[1]
        old_mean = stem_bn.running_mean.clone()
        assert recalibrate_bn(net, data[:2]) == 2
        after = (net(x) - reference(x)).abs().mean()
    assert not torch.allclose(stem_bn.running_mean, old_mean)
    assert stem_bn.momentum == 0.1 and not net.training
    assert after < 0.5 * before, (before, after)


def test_recalibrate_bn_without_batches_keeps_stats():
    net = ToySegNet(num_classes=3, image_size=(16, 16))
    net.stem[1].running_mean.fill_(0.7)
    assert recalibrate_bn(net, []) == 0
    assert torch.all(net.stem[1].running_mean == 0.7)


@pytest.fixture(scope="module")
def small_space():
    from qanas.space import get_space

    return get_space("squeezenas-small")


def test_score_subnet_end_to_end(small_space):
    from qanas.score import SubnetScorer
    from targets.cost import total_macs

    torch.manual_seed(0)
    supernet = build_supernet(small_space, 3).eval()
    cfg = small_space.min_config()
    train = _batches(2, 1, 0.0)
    val = tuple(_batches(1, 2, 0.0))
    scorer = SubnetScorer(supernet, train, val, QuantSpec(calibration_batches=1), bn_batches=2)
    score = scorer.score(cfg)
    assert score.arch == cfg.to_str()
    assert 0.0 <= score.miou <= 1.0 and 0.0 <= score.miou_fp32 <= 1.0
    assert score.macs == total_macs(small_space.layer_specs(cfg, (16, 16))) > 0
    assert score.params > 0 and score.seconds > 0 and len(score.per_class) == 3
    assert score.to_dict()["quant"] == QuantSpec(calibration_batches=1).to_dict()
    float_score = SubnetScorer(supernet, train, val, None, bn_batches=2).score(cfg)
    assert float_score.miou == float_score.miou_fp32 == pytest.approx(score.miou_fp32)
    assert not math.isnan(score.miou)


def test_merge_batches_keeps_order_and_caps_size():
    from qanas.score import merge_batches

    data = _batches(5, 3, 0.0)  # 5 batches of 4
    merged = merge_batches(data, 8)
    assert [int(b[0].shape[0]) for b in merged] == [8, 8, 4]
    torch.testing.assert_close(torch.cat([b[0] for b in merged]), torch.cat([b[0] for b in data]))
    torch.testing.assert_close(torch.cat([b[1] for b in merged]), torch.cat([b[1] for b in data]))
    assert [int(b[0].shape[0]) for b in merge_batches(data, 3)] == [4] * 5  # never split


def test_quantize_without_copy_folds_in_place():
    from qanas.quant import calibrate, quantize_model

    torch.manual_seed(0)
    net = ToySegNet(num_classes=3, image_size=(16, 16)).eval()
    x = _batches(1, 4, 0.0)[0][0]
    reference = quantize_model(net, QuantSpec(calibration_batches=1))
    calibrate(reference, [x])
    qmodel = quantize_model(net, QuantSpec(calibration_batches=1), copy_model=False)
    calibrate(qmodel, [x])
    with torch.no_grad():
        torch.testing.assert_close(qmodel(x), reference(x))
