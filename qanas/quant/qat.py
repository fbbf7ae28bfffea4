"""Quantization-aware training of a weight-sharing supernet: Brevitas fake-quant in place.

`prepare_supernet_qat` adds fake quantization to a weight-sharing supernet in
place, without changing its parameter names (so checkpoints, `set_active` and
`extract` keep working):

* every conv's weight is fake-quantized at forward time with the `QuantSpec`'s
  symmetric per-channel int8 grid, using Brevitas's straight-through rounding
  and clamping (`brevitas.function.ops_ste`). For `DynamicConv2d` the quantizer
  is applied to the *sliced* weight of the active subnet (its `weight_fake_quant`
  hook), so per-channel scales match what the extracted subnet will use;
* every activation's output, and the network input, go through a
  `brevitas.nn.QuantIdentity` whose scale is initialised from runtime statistics
  and then learned.

`strip_qat` removes all of it (an extracted subnet of a QAT supernet is stripped
before post-training quantization). Standalone QAT of an extracted subnet, the
Brevitas-quantized model itself trained with STE, is `qanas.quant.subnet_qat.prepare_qat`.
"""

from __future__ import annotations

import torch
from torch import nn

from qanas.quant.spec import QuantSpec

__all__ = ["WeightFakeQuant", "prepare_supernet_qat", "strip_qat"]

_ACTS = (nn.ReLU, nn.ReLU6, nn.Hardswish, nn.Hardsigmoid, nn.Sigmoid)
_NONNEG = (nn.ReLU, nn.ReLU6, nn.Hardsigmoid, nn.Sigmoid)
ACT_ATTR = "act_fake_quant"
WEIGHT_ATTR = "weight_fake_quant"
INPUT_ATTR = "input_fake_quant"


class WeightFakeQuant(nn.Module):
    """Symmetric fake quantization of a conv weight `[out, in, kh, kw]` with STE gradients.

    The scale is `max|w| / (2^(bits-1) - 1)` per output channel (or per tensor),
    recomputed from the weight it is given, as Brevitas's stats-based weight
    quantizers do.
    """

    def __init__(self, spec: QuantSpec):
        super().__init__()
        self.bits = spec.weight_bits
        self.per_channel = spec.weight_per_channel
        self.narrow_range = spec.narrow_range_weights

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        """The weight rounded to its int grid (values stay float)."""
        from brevitas.function.ops_ste import round_ste, tensor_clamp_ste

        max_int = 2.0 ** (self.bits - 1) - 1
        min_int = -max_int if self.narrow_range else -max_int - 1
        if self.per_channel:
            absmax = weight.abs().amax(dim=tuple(range(1, weight.dim())), keepdim=True)
        else:
            absmax = weight.abs().max()
        scale = absmax.clamp_min(1e-10) / max_int
        lo = torch.full_like(scale, min_int)
        hi = torch.full_like(scale, max_int)
        return tensor_clamp_ste(round_ste(weight / scale), lo, hi) * scale

    def extra_repr(self) -> str:
        kind = "per_channel" if self.per_channel else "per_tensor"
        return f"bits={self.bits}, {kind}, narrow_range={self.narrow_range}"


class QATConv2d(nn.Conv2d):
    """`nn.Conv2d` whose weight passes through `weight_fake_quant` (class swapped in place)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolution with the fake-quantized weight."""
        return self._conv_forward(x, self.weight_fake_quant(self.weight), self.bias)


def _act_quantizer(spec: QuantSpec, signed: bool) -> nn.Module:
    import brevitas.nn as qnn
    from brevitas.quant import Int8ActPerTensorFloat, Uint8ActPerTensorFloat

    base = Int8ActPerTensorFloat if signed or spec.act_signed else Uint8ActPerTensorFloat
    quant = base.let(bit_width=spec.act_bits, high_percentile_q=spec.act_percentile)
    return qnn.QuantIdentity(act_quant=quant, return_quant_tensor=False)


def _act_hook(module: nn.Module, inputs, output):
    return getattr(module, ACT_ATTR)(output)


def _input_hook(module: nn.Module, inputs):
    return (getattr(module, INPUT_ATTR)(inputs[0]),) + tuple(inputs[1:])


def prepare_supernet_qat(supernet: nn.Module, spec: QuantSpec | None = None) -> nn.Module:
    """Adds fake quantization to `supernet` in place (see the module docstring).

    Parameter names are unchanged; the quantizers add buffers/parameters under
    `*.weight_fake_quant`, `*.act_fake_quant` and `input_fake_quant`. Calling it
    twice is an error-free no-op.

    Args:
        supernet: a float supernet (or any module made of convs and activations).
        spec: the quantization format (default `QuantSpec()`).

    Returns:
        The same supernet object.

    Example:
        >>> supernet = prepare_supernet_qat(build_supernet(space, 19), QuantSpec())  # doctest: +SKIP
    """
    from qanas.supernet.dynamic_ops import DynamicConv2d

    spec = spec or QuantSpec()
    if getattr(supernet, "qanas_qat_spec", None) is not None:
        return supernet
    for module in list(supernet.modules()):
        if type(module) is nn.Conv2d:
            module.__class__ = QATConv2d
            module.add_module(WEIGHT_ATTR, WeightFakeQuant(spec))
        elif isinstance(module, DynamicConv2d):
            module.add_module(WEIGHT_ATTR, WeightFakeQuant(spec))
        elif isinstance(module, _ACTS) and not hasattr(module, ACT_ATTR):
            module.add_module(ACT_ATTR, _act_quantizer(spec, not isinstance(module, _NONNEG)))
            module.register_forward_hook(_act_hook)
    supernet.add_module(INPUT_ATTR, _act_quantizer(spec, signed=True))
    supernet.register_forward_pre_hook(_input_hook)
    supernet.qanas_qat_spec = spec.to_dict()
    return supernet


def strip_qat(model: nn.Module) -> nn.Module:
    """Removes what `prepare_supernet_qat` added (in place) and returns `model`.

    Works on a prepared supernet and on anything copied out of it (an extracted
    subnet that kept QAT convs or hooked activations).
    """
    for module in model.modules():
        if type(module) is QATConv2d:
            module.__class__ = nn.Conv2d
        for attr, hooks in ((WEIGHT_ATTR, None), (ACT_ATTR, module._forward_hooks),
                            (INPUT_ATTR, module._forward_pre_hooks)):
            if attr in module._modules:
                del module._modules[attr]
            if hooks:
                for key in [k for k, fn in hooks.items() if fn in (_act_hook, _input_hook)]:
                    del hooks[key]
    if hasattr(model, "qanas_qat_spec"):
        del model.qanas_qat_spec
    return model
