"""`mbv2-deeplab` (and the shared MobileNetV2 supernet machinery, over both MobileNetV2 spaces).

References: the supernet path vs the extracted static module; analytic layer
specs vs a hook count; an independent MobileNetV2 in torchvision's key
layout (`tests.support.mbv2_reference`) vs the seed subnet's encoder after loading its state dict.
"""

from __future__ import annotations

import io
import math

import numpy as np
import onnxruntime as ort
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from qanas.errors import CheckpointError, ConfigError
from qanas.space import SubnetConfig, get_space
from qanas.space.mbv2_deeplab import STAGES
from qanas.supernet import build_supernet
from qanas.supernet.blocks import InvertedResidual
from qanas.supernet.count import count_macs_params
from qanas.supernet.dynamic_ops import DynamicBatchNorm2d, DynamicConv2d
from qanas.supernet.pretrained import load_mobilenet_v2_file, load_mobilenet_v2_state_dict
from targets.cost import peak_activation_elements, total_macs, total_params
from tests.support.mbv2_reference import MBV2_SETTINGS, randomize_bn, reference_state_dict

SPACES = ["mbv2-deeplab", "fmas-mbv2"]
SHAPE = (2, 3, 32, 64)
ALLOWED_LEAVES = (nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid,
                  nn.Identity, nn.AdaptiveAvgPool2d, nn.AvgPool2d)


@pytest.fixture(scope="module", params=SPACES)
def space_and_net(request):
    torch.manual_seed(0)
    space = get_space(request.param)
    net = build_supernet(space, 5)
    randomize_bn(net)
    return space, net.eval()


def landmark_and_random(space, n_random: int = 3, seed: int = 0) -> list[SubnetConfig]:
    rng = np.random.default_rng(seed)
    return [space.max_config(), space.min_config(), space.seed_config()] + [space.sample(rng)
                                                                           for _ in range(n_random)]


def test_supernet_path_equals_extracted_subnet(space_and_net):
    space, net = space_and_net
    x = torch.randn(*SHAPE, generator=torch.Generator().manual_seed(1))
    outputs = []
    for cfg in landmark_and_random(space):
        net.set_active(cfg)
        with torch.no_grad():
            path = net(x)
            sub = net.extract(cfg).eval()(x)
        assert path.shape == (SHAPE[0], 5, SHAPE[2], SHAPE[3])
        torch.testing.assert_close(sub, path, atol=1e-5, rtol=1e-5)
        outputs.append(path)
    assert not torch.allclose(outputs[0], outputs[1])  # the paths really differ


def test_train_mode_path_equals_extracted_and_updates_sliced_stats(space_and_net):
    space, net = space_and_net
    cfg = space.sample(np.random.default_rng(7))
    x = torch.randn(*SHAPE, generator=torch.Generator().manual_seed(2))
    net.set_active(cfg)
    sub = net.extract(cfg).train()
    net.train()
    before = net.features[2].conv[0][1].running_mean.clone()
    try:
        with torch.no_grad():
            torch.testing.assert_close(sub(x), net(x), atol=1e-5, rtol=1e-5)
        after = net.features[2].conv[0][1].running_mean
        hidden = net.features[2].hidden
        assert not torch.equal(after[:hidden], before[:hidden])
        assert torch.equal(after[hidden:], before[hidden:])
    finally:
        net.eval()


def test_extract_does_not_change_active_path(space_and_net):
    space, net = space_and_net
    net.set_active(space.max_config())
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        before = net(x)
        net.extract(space.min_config())
        torch.testing.assert_close(net(x), before)


@pytest.mark.parametrize("name", SPACES)
def test_string_round_trip(name):
    space = get_space(name)
    for cfg in landmark_and_random(space, n_random=5, seed=3):
        assert SubnetConfig.from_str(cfg.to_str()) == cfg
        assert space.resolve(cfg.to_str().split(":", 1)[1]) == cfg
    with pytest.raises(ConfigError, match="options"):
        SubnetConfig.from_str(space.max_config().to_str().replace(space.max_config().labels()[0], "bogus", 1))


@pytest.mark.parametrize("name", SPACES)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_encode_decode_round_trip(name, data):
    space = get_space(name)
    vec = [data.draw(st.integers(0, int(u))) for u in space.upper_bounds]
    cfg = space.decode(vec)
    assert space.is_valid(cfg)
    assert space.decode(space.encode(cfg)) == cfg
    assert SubnetConfig.from_str(cfg.to_str()) == cfg
    if space.is_valid(SubnetConfig(space.name, tuple(vec))):
        assert tuple(space.encode(cfg)) == tuple(vec)


@pytest.mark.parametrize("name", SPACES)
@pytest.mark.parametrize("image_size", [(32, 64), (40, 56)])
def test_analytic_costs_equal_hook_count(name, image_size):
    space = get_space(name)
    net = build_supernet(space, 7).eval()
    for cfg in landmark_and_random(space, n_random=2, seed=5):
        specs = space.layer_specs(cfg, image_size, num_classes=7)
        assert count_macs_params(net.extract(cfg), (1, 3, *image_size)) == (total_macs(specs), total_params(specs))
        assert specs[-1].out_hw == image_size and specs[-1].out_channels == 7
        assert peak_activation_elements(specs) >= 3 * image_size[0] * image_size[1]


@pytest.mark.parametrize("name", SPACES)
def test_max_min_order_compute(name):
    space = get_space(name)
    macs = {t: total_macs(space.layer_specs(space.resolve(t), (64, 64))) for t in ("min", "seed", "max")}
    assert macs["min"] < macs["seed"] <= macs["max"]


def test_mbv2_deeplab_cardinality_and_skip_rules():
    space = get_space("mbv2-deeplab")
    n_layers = sum(n for _, n, _, _ in STAGES)
    expected = 9 ** len(STAGES) * 10 ** (n_layers - len(STAGES)) * 2 * 2 * 3
    assert space.cardinality == expected == math.prod(d.size for d in space.decisions)
    first_layers = {f"l{sum(n for _, n, _, _ in STAGES[:i]) + 2}" for i in range(len(STAGES))}
    for decision in space.decisions[:n_layers]:
        assert ("skip" in decision.options) == (decision.name not in first_layers)


def test_seed_is_plain_mobilenet_v2():
    space = get_space("mbv2-deeplab")
    model = build_supernet(space, 3).extract(space.seed_config())
    blocks = [m for m in model.modules() if isinstance(m, InvertedResidual)]
    expected = []
    in_ch = 32
    for t, c, n, s in MBV2_SETTINGS:
        for j in range(n):
            stride = s if j == 0 else 1
            dilation = 1
            if c in (160, 320):  # DeepLabV3 output stride 16: stride 1, dilation 2
                stride, dilation = 1, 2
            expected.append((in_ch, c, in_ch * t, 3, stride, dilation))
            in_ch = c
    got = []
    for b in blocks:
        dw = b.conv[-3][0]
        got.append((b.conv[0][0].in_channels, b.conv[-2].out_channels, dw.in_channels, dw.kernel_size[0],
                    dw.stride[0], dw.dilation[0]))
    assert got == expected
    stem = model.low[0][0]
    assert (stem.in_channels, stem.out_channels, stem.kernel_size, stem.stride) == (3, 32, (3, 3), (2, 2))
    assert model.head.rates == (6, 12, 18)


@pytest.mark.parametrize("name", SPACES)
def test_extracted_subnet_fx_traces_and_exports_onnx(name):
    space = get_space(name)
    net = build_supernet(space, 4).eval()
    randomize_bn(net)
    cfg = space.sample(np.random.default_rng(11))
    model = net.extract(cfg).eval()
    leaves = [m for m in model.modules() if not list(m.children())]
    assert all(isinstance(m, ALLOWED_LEAVES) for m in leaves), {type(m).__name__ for m in leaves}
    x = torch.randn(1, 3, 32, 64)
    traced = torch.fx.symbolic_trace(model)
    with torch.no_grad():
        expected = model(x)
        torch.testing.assert_close(traced(x), expected)
        buffer = io.BytesIO()
        torch.onnx.export(model, (x,), buffer, dynamo=False, input_names=["x"], opset_version=17)
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    (onnx_out,) = session.run(None, {"x": x.numpy()})
    np.testing.assert_allclose(onnx_out, expected.numpy(), atol=1e-4, rtol=1e-4)


def test_head_choices_switch_modules():
    space = get_space("mbv2-deeplab")
    net = build_supernet(space, 3)
    base = space.seed_config()
    for head, rates in (("aspp6", (6, 12, 18)), ("aspp12", (12, 24, 36))):
        cfg = space.resolve(base.to_str().rsplit("_", 1)[0] + f"_{head}")
        assert net.extract(cfg).head.rates == rates
    cfg = space.resolve(base.to_str().rsplit("_", 1)[0] + "_lraspp")
    assert net.extract(cfg).use_low


# -- dynamic ops ------------------------------------------------------------------------------
def test_dynamic_conv_slices_centre_and_leading_channels():
    conv = DynamicConv2d(8, 12, 7)
    conv.configure(out_ch=6, kernel=3, stride=2, dilation=2)
    x = torch.randn(1, 5, 9, 11)
    static = conv.to_static(5)
    torch.testing.assert_close(static.weight, conv.weight[:6, :5, 2:5, 2:5])
    torch.testing.assert_close(conv(x), static(x))
    with pytest.raises(ValueError, match="kernel"):
        conv.configure(kernel=9)


def test_dynamic_batchnorm_matches_static_slice():
    bn = DynamicBatchNorm2d(10)
    randomize_bn(bn)
    x = torch.randn(2, 6, 4, 4)
    bn.eval()
    torch.testing.assert_close(bn(x), bn.to_static(6).eval()(x))


def test_torchvision_layout_init_reproduces_reference_encoder():
    ref, state = reference_state_dict({i: (1, 2) for i in range(14, 18)})
    space = get_space("mbv2-deeplab")
    net = build_supernet(space, 3).eval()
    report = load_mobilenet_v2_state_dict(net, state)
    assert report.missing == []
    assert set(report.unused) == {k for k in state if k.startswith(("features.18.", "classifier."))}
    x = torch.randn(1, 3, 32, 64)
    with torch.no_grad():
        torch.testing.assert_close(net.extract(space.seed_config()).eval().encode(x), ref.encoder(x),
                                   atol=1e-5, rtol=1e-5)


def test_init_from_file_and_clear_errors(tmp_path):
    _, state = reference_state_dict()
    path = tmp_path / "mbv2.pth"
    torch.save({"state_dict": state}, path)
    net = build_supernet(get_space("mbv2-deeplab"), 3)
    assert len(load_mobilenet_v2_file(net, path).loaded) == len([k for k in net.state_dict()
                                                                 if k.startswith("features.")])
    bad = dict(state)
    bad["features.2.conv.0.0.weight"] = torch.zeros(200, 16, 1, 1)
    with pytest.raises(CheckpointError, match=r"features\.2\.conv\.0\.0\.weight"):
        load_mobilenet_v2_state_dict(net, bad)
    with pytest.raises(CheckpointError, match="layout"):
        load_mobilenet_v2_state_dict(net, {"backbone.conv1.weight": torch.zeros(1)})
    with pytest.raises(CheckpointError, match="does not exist"):
        load_mobilenet_v2_file(net, tmp_path / "missing.pth")
