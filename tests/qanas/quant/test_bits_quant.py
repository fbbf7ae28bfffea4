"""Per-layer weight bits (`QuantSpec.layer_weight_bits`) in the lean and Brevitas fake-quant models.

An all-int8 per-layer spec is today's model, bit for bit; a mixed spec quantizes the
named convs to 4-bit narrow-range codes ([-7, 7] x a per-channel scale) and the lean
model stays bit-identical to Brevitas's.
"""

from __future__ import annotations

import pytest
import torch

from qanas.errors import ConfigError
from qanas.quant import QuantSpec, calibrate, quantize_model
from qanas.quant.errors import QuantizationError
from qanas.quant.layer_bits import conv_module_names
from qanas.quant.quant_model import quantize_fast
from tests.support.bits_subnets import _batches, seeded_subnet


@pytest.fixture(scope="module")
def subnet():
    return seeded_subnet()


def _lean(model, spec):
    lean = quantize_fast(model, spec)
    lean.calibrate(_batches(2, 1))
    with torch.no_grad():
        return lean, lean(_batches(1, 2)[0])


def _brevitas(model, spec):
    qmodel = quantize_model(model, spec)
    calibrate(qmodel, _batches(2, 1))
    with torch.no_grad():
        out = qmodel(_batches(1, 2)[0])
    return qmodel, out.value if hasattr(out, "value") else out


def test_int8_per_layer_spec_is_todays_model(subnet):
    names = conv_module_names(subnet)
    spec = QuantSpec(layer_weight_bits=tuple((n, 8) for n in names))
    assert torch.equal(_lean(subnet, spec)[1], _lean(subnet, QuantSpec())[1])
    assert torch.equal(_brevitas(subnet, spec)[1], _brevitas(subnet, QuantSpec())[1])
    assert QuantSpec().to_dict() == QuantSpec.from_dict(QuantSpec().to_dict()).to_dict()
    assert "layer_weight_bits" not in QuantSpec().to_dict()  # metric-set keys unchanged


def test_mixed_lean_model_is_bit_identical_to_brevitas(subnet):
    names = conv_module_names(subnet)
    four = tuple((n, 4) for n in names[1:-1:2])
    spec = QuantSpec(layer_weight_bits=four)
    lean, got = _lean(subnet, spec)
    qmodel, expected = _brevitas(subnet, spec)
    assert torch.equal(got, expected), float((got - expected).abs().max())
    assert not torch.equal(got, _lean(subnet, QuantSpec())[1])
    modules = dict(qmodel.named_modules())
    for name, _ in four:
        codes = modules[name].quant_weight().int()
        assert int(codes.abs().max()) == 7  # narrow range, the largest weight of a channel
    for node in lean.graph.nodes:
        if node.kind == "conv" and node.meta["module"] in dict(four):
            weight, _ = lean._weights[id(node)]
            steps = weight.abs().reshape(weight.shape[0], -1).amax(dim=1)
            codes = weight.reshape(weight.shape[0], -1) / (steps[:, None] / 7)
            assert torch.allclose(codes, codes.round(), atol=1e-4)


def test_bad_layer_bits_are_refused(subnet):
    with pytest.raises(ConfigError, match="layer 'x' has 9 bits"):
        QuantSpec(layer_weight_bits=(("x", 9),))
    with pytest.raises(QuantizationError, match="not a Conv2d"):
        quantize_model(subnet, QuantSpec(layer_weight_bits=(("nope", 4),)))
    with pytest.raises(QuantizationError, match="not convs of this model"):
        quantize_fast(subnet, QuantSpec(layer_weight_bits=(("nope", 4),)))
    spec = QuantSpec(layer_weight_bits=(("a.b", 4),))
    assert QuantSpec.from_dict(spec.to_dict()) == spec
    assert spec.to_str() == "w8cm-a8u-b32"
