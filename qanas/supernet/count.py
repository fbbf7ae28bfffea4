"""Hook-based MAC and parameter counts of a concrete module, the reference for analytic counts."""

from __future__ import annotations

import torch
from torch import nn


def count_macs_params(model: nn.Module, input_shape: tuple[int, ...]) -> tuple[int, int]:
    """Runs `model` once on zeros of `input_shape` and counts conv/linear MACs and parameters.

    Only `nn.Conv2d` and `nn.Linear` (and subclasses, e.g. Brevitas quant layers)
    contribute MACs, matching `targets.cost.LayerSpec.macs`, plus modules with a
    `macs_of_call(inputs, output)` method (products of two activations, e.g. the
    attention `MatMul`: MACs per sample).

    Returns:
        (macs, params) where params counts the weights and biases of conv/linear
        layers (BatchNorm affine parameters are excluded, as in `LayerSpec.params`).
    """
    macs = 0

    def conv_hook(module: nn.Conv2d, inputs, output):
        nonlocal macs
        kh, kw = module.kernel_size
        per_out = kh * kw * (module.in_channels // module.groups)
        macs += per_out * output.numel() // output.shape[0]

    def linear_hook(module: nn.Linear, inputs, output):
        nonlocal macs
        macs += module.in_features * output.numel() // output.shape[0]

    def call_hook(module: nn.Module, inputs, output):
        nonlocal macs
        macs += int(module.macs_of_call(inputs, output))

    handles = []
    for module in model.modules():
        if callable(getattr(module, "macs_of_call", None)):
            handles.append(module.register_forward_hook(call_hook))
        elif isinstance(module, nn.Conv2d):
            handles.append(module.register_forward_hook(conv_hook))
        elif isinstance(module, nn.Linear):
            handles.append(module.register_forward_hook(linear_hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(torch.zeros(input_shape))
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    params = sum(
        p.numel()
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
        for p in (m.weight, m.bias)
        if p is not None
    )
    return macs, params
