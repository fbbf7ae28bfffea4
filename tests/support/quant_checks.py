"""Calibration batches and the comparison of the lean quantized graph with
Brevitas's scales."""

from __future__ import annotations

import torch
from torch import nn

from qanas.quant import QuantSpec, calibrate, quantize_model
from qanas.quant.quant_model import quantize_fast


def _batches(n: int, seed: int, size=(32, 64), batch: int = 2) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(batch, 3, *size, generator=gen) * 1.5 + 0.2 for _ in range(n)]


def _brevitas_scales(qmodel) -> list[float]:
    """The distinct scales of the quantizers the graph calls (Brevitas's residual handler
    can leave a shared quantizer registered but replaced everywhere, never calibrated)."""
    import brevitas.nn as qnn
    from brevitas.nn.quant_layer import QuantNonLinearActLayer

    scales = {}
    called = {n.target for n in qmodel.graph.nodes if n.op == "call_module"}
    for module in (qmodel.get_submodule(target) for target in called):
        if isinstance(module, (qnn.QuantIdentity, QuantNonLinearActLayer)):
            impl = module.act_quant.fused_activation_quant_proxy.tensor_quant.scaling_impl
            scales[id(impl)] = float(module.act_quant.scale().detach())
    return sorted(scales.values())


def _lean_scales(lean) -> list[float]:
    groups = {id(n.quant.quantizer.group): n.quant.quantizer.group
              for n in lean.graph.nodes if n.quant is not None}
    return sorted(float(g.scale) for g in groups.values())


def _assert_same_as_brevitas(model: nn.Module, spec: QuantSpec, calib, probe) -> None:
    lean = quantize_fast(model, spec)
    lean.calibrate(calib)
    brevitas = quantize_model(model, spec)
    calibrate(brevitas, calib)
    assert _lean_scales(lean) == _brevitas_scales(brevitas)
    with torch.no_grad():
        expected = brevitas(probe)
        expected = expected.value if hasattr(expected, "value") else expected
        got = lean(probe)
    assert torch.equal(got, expected), float((got - expected).abs().max())
