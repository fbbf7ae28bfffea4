"""SqueezeNAS spaces: options, string/vector forms, supernet path vs extracted subnet, costs."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from qanas.errors import ConfigError
from qanas.space import SubnetConfig, get_space
from qanas.space.squeezenas import REFERENCE_SIZE, OpSpec
from qanas.supernet import build_supernet
from qanas.supernet.count import count_macs_params
from qanas.supernet.squeezenas_blocks import ChoiceBlock, GroupedInvertedResidual
from targets.cost import total_macs, total_params

SPACES = ["squeezenas-small", "squeezenas-large", "squeezenas-xlarge"]
LABELS = (
    "k3e1g1", "k3e1g2", "k3e3g1", "k3e6g1", "k5e1g1", "k5e1g2", "k5e3g1", "k5e6g1",
    "k3e1g1d2", "k3e1g2d2", "k3e3g1d2", "k3e6g1d2", "skip",
)
# Superblocks per space: the sum of the stage block counts in the macro-architectures.
NUM_BLOCKS = {"squeezenas-small": 20, "squeezenas-large": 22, "squeezenas-xlarge": 22}
NUM_CLASSES = 5
SIZE = (32, 64)
ALLOWED = (nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.Hardswish, nn.Hardsigmoid,
           nn.Sigmoid, nn.Identity, nn.AdaptiveAvgPool2d, nn.AvgPool2d)


def _randomize_bn(model: nn.Module, seed: int) -> None:
    """Non-trivial BN statistics and affine parameters, so that eval-mode BN is not the identity."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(0.1 * torch.randn(n, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(n, generator=gen))
                m.weight.copy_(0.5 + torch.rand(n, generator=gen))
                m.bias.copy_(0.1 * torch.randn(n, generator=gen))


@pytest.fixture(scope="module", params=SPACES)
def supernet(request):
    """One supernet per space for the whole module (the xlarge one holds ~27M parameters)."""
    torch.manual_seed(0)
    net = build_supernet(get_space(request.param), NUM_CLASSES)
    _randomize_bn(net, seed=1)
    return net.eval()


def _configs(space, count=3, seed=0):
    rng = np.random.default_rng(seed)
    return [space.max_config(), space.min_config(), space.seed_config()] + [
        space.sample(rng) for _ in range(count)
    ]


@pytest.mark.parametrize("name", SPACES)
def test_thirteen_options_per_superblock(name):
    space = get_space(name)
    assert len(space.decisions) == NUM_BLOCKS[name]
    for decision in space.decisions:
        assert decision.options == LABELS
    assert space.cardinality == 13 ** NUM_BLOCKS[name]


@pytest.mark.parametrize("name", SPACES)
@settings(max_examples=25, deadline=None)
@given(data=st.data())
def test_string_and_vector_round_trips(name, data):
    space = get_space(name)
    choices = data.draw(st.lists(st.integers(0, 12), min_size=len(space.decisions),
                                 max_size=len(space.decisions)))
    cfg = SubnetConfig(name, tuple(choices))
    assert SubnetConfig.from_str(cfg.to_str()) == cfg
    assert space.resolve(cfg.to_str().split(":", 1)[1]) == cfg
    assert space.decode(space.encode(cfg)) == cfg
    assert SubnetConfig.from_dict(cfg.to_dict()) == cfg


def test_bad_labels_teach():
    with pytest.raises(ConfigError, match="k3e6g1"):
        OpSpec.parse("k3x6")
    body = "_".join(["k3e6g1"] * 19 + ["k7e6g1"])
    with pytest.raises(ConfigError, match="options: k3e1g1"):
        SubnetConfig.from_str(f"squeezenas-small:{body}")


def test_groups_must_divide_channels():
    with pytest.raises(ValueError, match="groups=2"):
        GroupedInvertedResidual(15, 16, 1, OpSpec(3, 1, 2))


@pytest.mark.parametrize("name", SPACES)
def test_landmarks_bound_the_space(name):
    space = get_space(name)
    macs = {k: space.costs(c, REFERENCE_SIZE)["macs"] for k, c in
            (("max", space.max_config()), ("min", space.min_config()), ("seed", space.seed_config()))}
    assert set(space.max_config().labels()) == {"k5e6g1"}
    assert set(space.seed_config().labels()) == {"k3e6g1"}
    assert macs["min"] < macs["seed"] < macs["max"]
    rng = np.random.default_rng(3)
    for _ in range(10):
        sampled = space.costs(space.sample(rng), REFERENCE_SIZE)["macs"]
        assert macs["min"] <= sampled <= macs["max"]


def test_skip_is_identity_or_projection(supernet):
    skip = len(LABELS) - 1
    for block, plan in zip(supernet.choice_blocks, supernet.space.plans, strict=True):
        assert isinstance(block, ChoiceBlock) and len(block.candidates) == 13
        op = block.candidates[skip]
        if plan.stride == 1 and plan.in_channels == plan.out_channels:
            assert isinstance(op, nn.Identity)
        else:
            conv = op[0]
            assert (conv.kernel_size, conv.stride) == ((1, 1), (plan.stride, plan.stride))
            assert (conv.in_channels, conv.out_channels) == (plan.in_channels, plan.out_channels)


def test_supernet_path_equals_extracted_subnet(supernet):
    x = torch.randn(2, 3, *SIZE, generator=torch.Generator().manual_seed(2))
    outputs = {}
    for cfg in _configs(supernet.space):
        supernet.set_active(cfg)
        subnet = supernet.extract(cfg)
        assert not subnet.training
        assert all(isinstance(m, ALLOWED) for m in subnet.modules() if not list(m.children()))
        with torch.no_grad():
            expected, got = supernet(x), subnet(x)
        assert got.shape == (2, NUM_CLASSES, *SIZE)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
        outputs[cfg.to_str()] = got
    first, *rest = outputs.values()
    assert any(not torch.allclose(first, other) for other in rest), "set_active changed nothing"


def test_extract_copies_weights(supernet):
    cfg = supernet.space.seed_config()
    subnet = supernet.extract(cfg)
    before = subnet.stem[0].weight.clone()
    with torch.no_grad():
        supernet.net.stem[0].weight.add_(1.0)
    try:
        torch.testing.assert_close(subnet.stem[0].weight, before)
    finally:
        with torch.no_grad():
            supernet.net.stem[0].weight.sub_(1.0)


def test_extract_shared_is_the_subnet_without_copies(supernet):
    """The exporter's read-only subnet: the same network and output as `extract`, made of
    the supernet's own modules."""
    x = torch.randn(1, 3, *SIZE, generator=torch.Generator().manual_seed(3))
    for cfg in _configs(supernet.space, count=2, seed=4):
        shared, copied = supernet.extract_shared(cfg), supernet.extract(cfg)
        assert shared.stem is supernet.net.stem
        assert all(block is choice.candidates[c] for block, choice, c in zip(
            [*shared.low_blocks, *shared.high_blocks], supernet.choice_blocks, cfg.choices,
            strict=True))
        with torch.no_grad():
            torch.testing.assert_close(shared(x), copied(x), atol=0, rtol=0)


@pytest.mark.parametrize("size", [SIZE, (33, 47)])
def test_analytic_costs_match_hook_count(supernet, size):
    space = supernet.space
    for cfg in _configs(space, count=2, seed=5):
        specs = space.layer_specs(cfg, size, num_classes=NUM_CLASSES)
        macs, params = count_macs_params(supernet.extract(cfg), (1, 3, *size))
        assert (total_macs(specs), total_params(specs)) == (macs, params), cfg.to_str()


def test_conv_shapes_match_layer_specs(supernet):
    """Every conv spec (channels, sizes, kernel, stride, dilation, groups) matches the module run."""
    space = supernet.space
    cfg = space.sample(np.random.default_rng(7))
    subnet = supernet.extract(cfg)
    seen = []

    def hook(module, inputs, output):
        seen.append((module.in_channels, module.out_channels, tuple(inputs[0].shape[-2:]),
                     tuple(output.shape[-2:]), module.kernel_size, module.stride,
                     module.dilation, module.groups, module.bias is not None))

    acts = []
    handles = [m.register_forward_hook(hook) for m in subnet.modules() if isinstance(m, nn.Conv2d)]
    handles += [m.register_forward_hook(lambda m, i, o: acts.append((type(m).__name__.lower(),
                                                                     tuple(o.shape[1:]))))
                for m in subnet.modules() if isinstance(m, (nn.ReLU, nn.ReLU6, nn.Sigmoid))]
    with torch.no_grad():
        subnet(torch.zeros(1, 3, 33, 47))
    for h in handles:
        h.remove()
    specs = space.layer_specs(cfg, (33, 47), NUM_CLASSES)
    expected = [(s.in_channels, s.out_channels, s.in_hw, s.out_hw, s.kernel, s.stride, s.dilation,
                 s.groups, s.bias) for s in specs if s.op == "conv"]
    assert seen == expected
    assert acts == [(s.name.rsplit(".", 1)[1], (s.out_channels, *s.out_hw))
                    for s in specs if s.op == "act"]
    assert space.costs(cfg, (33, 47), NUM_CLASSES)["peak_activation_elements"] > 0


def test_extracted_subnet_traces_and_exports(supernet):
    import onnx
    import onnxruntime as ort

    cfg = supernet.space.sample(np.random.default_rng(11))
    subnet = supernet.extract(cfg)
    x = torch.randn(1, 3, *SIZE, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        expected = subnet(x)
        traced = torch.fx.symbolic_trace(subnet)
        torch.testing.assert_close(traced(x), expected, atol=1e-6, rtol=1e-6)
    buffer = io.BytesIO()
    torch.onnx.export(subnet, (x,), buffer, dynamo=False, opset_version=17,
                      input_names=["image"], output_names=["logits"])
    model = onnx.load_from_string(buffer.getvalue())
    onnx.checker.check_model(model)
    session = ort.InferenceSession(buffer.getvalue(), providers=["CPUExecutionProvider"])
    (got,) = session.run(None, {"image": x.numpy()})
    np.testing.assert_allclose(got, expected.numpy(), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("name", ["mac_small", "lat_small", "mac_large", "lat_large",
                                  "mac_xlarge", "lat_xlarge"])
def test_published_networks_count_the_published_gigamacs(name):
    """The six released networks at 1024x2048, 19 classes: within 2 % of the published cost."""
    from qanas.space.squeezenas_published import PUBLISHED, published_config

    cfg = published_config(name)
    macs = get_space(cfg.space).costs(cfg, (1024, 2048), 19)["macs"]
    assert macs / 1e9 == pytest.approx(PUBLISHED[name].published_gmacs, rel=0.02)


def test_unknown_published_network_lists_the_known_ones():
    from qanas.space.squeezenas_published import published_config

    with pytest.raises(ConfigError, match="lat_small"):
        published_config("lat_medium")
