"""The lean quantized graph (`qanas.quant.quant_graph` / `quant_model`) against Brevitas.

The lean model must be the Brevitas model `quantize_model` + `calibrate` build, not an
approximation of it: the same quantization points with the same sharing (as many
distinct scales, each equal), and bit-identical logits, on subnets of every space and on
the toy net that uses every op, under several `QuantSpec`s. Scores of `SubnetScorer`
then agree between the two engines, and the lean logits match onnxruntime on the QDQ
export of the Brevitas model.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from qanas.quant import QuantSpec, calibrate, compare_with_onnx, export_qdq, quantize_model
from qanas.quant.fake_quant import new_act_quantizer, percentile_of_magnitude
from qanas.quant.quant_graph import UnsupportedGraph
from qanas.quant.quant_model import QuantGraphModel, quantize_fast
from qanas.quant.toy import ToySegNet
from qanas.score import SubnetScorer, recalibrate_bn
from qanas.supernet import build_supernet
from tests.support.quant_checks import _assert_same_as_brevitas, _batches


def _space_cases() -> list:
    slow = pytest.mark.slow
    return [("squeezenas-small", "random:3"), ("squeezenas-small", "min"),
            ("mbv2-deeplab", "random:2"), ("fmas-mbv2", "random:3"),
            pytest.param("squeezenas-small", "seed", marks=slow),
            pytest.param("squeezenas-large", "random:4", marks=slow),
            pytest.param("squeezenas-xlarge", "min", marks=slow),
            pytest.param("mbv2-deeplab", "seed", marks=slow)]


def _resolve(space, which: str):
    if which.startswith("random:"):
        return space.sample(np.random.default_rng(int(which.split(":")[1])))
    return space.resolve(which)


@pytest.mark.parametrize(("space_name", "which"), _space_cases())
def test_space_subnet_is_bit_identical_to_brevitas(space_name, which):
    from qanas.space import get_space

    space = get_space(space_name)
    torch.manual_seed(0)
    subnet = build_supernet(space, 5).extract(_resolve(space, which))
    calib = _batches(2, 1)
    recalibrate_bn(subnet, calib)  # realistic BatchNorm statistics, as scoring has
    _assert_same_as_brevitas(subnet.eval(), QuantSpec(), calib, _batches(1, 2)[0])


def test_topformer_subnet_is_bit_identical_to_brevitas():
    """Attention: int8 matmul operands and products, uint8 softmax, slices of the tokens."""
    from qanas.space import get_space

    space = get_space("efficient-topformer")
    torch.manual_seed(0)
    subnet = build_supernet(space, 5).extract(space.resolve("min"))
    calib = _batches(2, 1, size=(64, 64))
    recalibrate_bn(subnet, calib)
    _assert_same_as_brevitas(subnet.eval(), QuantSpec(), calib, _batches(1, 2, size=(64, 64))[0])


@pytest.mark.parametrize("spec", [
    QuantSpec(),
    QuantSpec(act_signed=True),
    QuantSpec(weight_per_channel=False, bias_bits=16),
    QuantSpec(weight_bits=4, act_bits=6, narrow_range_weights=False, act_percentile=99.0),
    QuantSpec(act_percentile=100.0, bias_bits=24),
], ids=str)
def test_toy_net_with_every_op_is_bit_identical_to_brevitas(spec):
    torch.manual_seed(0)
    model = ToySegNet(num_classes=4, image_size=(32, 32))
    calib = _batches(2, 3, size=(32, 32))
    recalibrate_bn(model, calib)
    _assert_same_as_brevitas(model.eval(), spec, calib, _batches(1, 4, size=(32, 32))[0])


@pytest.mark.slow
def test_lean_model_matches_onnxruntime_on_the_brevitas_export(tmp_path):
    from qanas.space import get_space

    space = get_space("squeezenas-small")
    torch.manual_seed(0)
    subnet = build_supernet(space, 5).extract(_resolve(space, "random:5")).eval()
    calib = _batches(2, 5)
    brevitas = quantize_model(subnet, QuantSpec())
    calibrate(brevitas, calib)
    path = export_qdq(brevitas, calib[0][:1], tmp_path / "subnet.onnx")
    lean = quantize_fast(subnet, QuantSpec())
    lean.calibrate(calib)
    report = compare_with_onnx(lean, path, _batches(1, 6)[0])
    assert report["max_int_diff"] <= 1 and report["equal_share"] >= 0.999, report


def test_dead_activation_scale_is_floored_like_brevitas():
    """An activation that is all zeros during calibration (here the input) gets the scale
    floor 1e-10 after the division by the threshold, which the next conv's bias scale
    (input x weight scale, codes saturated at 2^30) makes visible in the logits."""
    torch.manual_seed(0)
    model = ToySegNet(num_classes=3, image_size=(32, 32))
    recalibrate_bn(model, _batches(2, 7, size=(32, 32)))
    zeros = [torch.zeros(2, 3, 32, 32)] * 2
    _assert_same_as_brevitas(model.eval(), QuantSpec(), zeros, _batches(1, 8, size=(32, 32))[0])


def test_lean_model_leaves_the_subnet_and_the_images_unchanged():
    """It computes in place where it can; never in the weights or the caller's images."""
    torch.manual_seed(0)
    model = ToySegNet(num_classes=3, image_size=(32, 32)).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images = _batches(1, 0, size=(32, 32))
    copies = [x.clone() for x in images]
    qmodel = quantize_fast(model, QuantSpec())
    qmodel.calibrate(images)
    qmodel(images[0])
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(torch.equal(x, c) for x, c in zip(images, copies, strict=True))


@pytest.mark.parametrize("shape", [(1,), (7,), (3, 5), (2, 8, 9, 9), (4, 16, 32, 64), (2, 1025),
                                   (3, 50_000)])
@pytest.mark.parametrize("q", [99.999, 99.0, 90.0, 100.0, 50.5])
def test_percentile_is_brevitas_kthvalue(shape, q):
    gen = torch.Generator().manual_seed(len(shape))
    relu = torch.randn(*shape, generator=gen).relu()
    for x, nonnegative in ((torch.randn(*shape, generator=gen), False), (relu, False),
                           (relu, True), (torch.round(torch.randn(*shape, generator=gen) * 2), False),
                           (torch.zeros(shape), True)):
        k = int(math.floor(0.01 * q * x.numel() + 0.5))
        expected = x.abs().reshape(-1).kthvalue(k).values
        assert float(percentile_of_magnitude(x, q, nonnegative)) == float(expected)


@pytest.mark.parametrize("signed", [True, False])
@pytest.mark.parametrize(("act", "act_"), [(None, None), (torch.relu, torch.relu_),
                                           (torch.sigmoid, torch.sigmoid_)])
@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (3, 40, 64, 64)])  # one slice, several
def test_in_place_quantizer_is_bit_identical_to_the_out_of_place_one(signed, act, act_, shape):
    gen = torch.Generator().manual_seed(1)
    quantizer = new_act_quantizer(signed, 8, 99.9)
    quantizer.group.observe(torch.randn(4, 100, generator=gen))
    x = torch.randn(*shape, generator=gen) * 4
    expected = quantizer(x if act is None else act(x))
    for source in (x.clone(), x.clone().transpose(1, 2)):  # contiguous, strided
        got = quantizer.quantize_(source, act_)
        want = expected if source.is_contiguous() else expected.transpose(1, 2)
        assert torch.equal(got.view(torch.int32), want.view(torch.int32))


def test_unsupported_op_raises_and_is_refused_clearly():
    with pytest.raises(UnsupportedGraph):
        quantize_fast(nn.Sequential(nn.Conv2d(3, 4, 1), nn.Linear(4, 4)), QuantSpec())


def _scorers(space_name: str, engine_pair=("lean", "brevitas")):
    from qanas.data import build_dataset, make_loader
    from qanas.score import cache_batches, val_subset
    from qanas.space import get_space

    size = (32, 64)
    train = build_dataset("synthetic", "train", image_size=size, seed=0, length=16)
    val = build_dataset("synthetic", "val", image_size=size, seed=0, length=8)
    train_batches = cache_batches(make_loader(train, 4, shuffle=True, seed=0), 4)
    val_batches = val_subset(make_loader(val, 4, shuffle=False, seed=0), 1.0)
    torch.manual_seed(0)
    space = get_space(space_name)
    supernet = build_supernet(space, train.num_classes).eval()
    return space, [SubnetScorer(supernet, train_batches, val_batches, QuantSpec(), engine=e)
                   for e in engine_pair]


@pytest.mark.parametrize("space_name", ["squeezenas-small",
                                        pytest.param("fmas-mbv2", marks=pytest.mark.slow)])
def test_scorer_engines_give_the_same_int8_miou(space_name):
    space, (lean, brevitas) = _scorers(space_name)
    for which in ("random:1", "random:2"):
        cfg = _resolve(space, which)
        a, b = lean.score(cfg), brevitas.score(cfg)
        assert abs(a.miou - b.miou) <= 0.002, (which, a.miou, b.miou)
        assert a.miou_fp32 == b.miou_fp32 and a.macs == b.macs
    assert lean.lean_fallbacks == 0


def test_scorer_falls_back_to_brevitas_for_graphs_outside_the_lean_vocabulary():
    _, (lean,) = _scorers("squeezenas-small", ("lean",))
    with_linear = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Linear(64, 64)).eval()  # Brevitas only
    qmodel = lean.quantize_for_scoring(with_linear)
    assert not isinstance(qmodel, QuantGraphModel) and lean.lean_fallbacks == 1


def test_scorer_rejects_an_unknown_engine():
    from qanas.errors import ConfigError

    with pytest.raises(ConfigError, match="engine"):
        _scorers("squeezenas-small", ("fast",))
