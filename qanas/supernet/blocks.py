"""Static building blocks of extracted subnets (MobileNetV2 style) and their layer specs.

Everything an extracted subnet contains is built from these blocks, which use
only `nn.Conv2d`, `nn.BatchNorm2d`, activations, `nn.AdaptiveAvgPool2d(1)`,
`+`, `*`, `torch.cat` and `F.interpolate` (bilinear, align_corners=False) with a
size read from the input's shape. They trace with `torch.fx.symbolic_trace`
and export with `torch.onnx.export(dynamo=False)`.

Module names follow torchvision's MobileNetV2 (`conv.0.0` is the expansion
conv, `conv.0.1` its BatchNorm, ...), so torchvision state dicts map 1:1.

Each block has a matching `*_specs` function in `qanas.space.layer_specs` returning
`targets.cost.LayerSpec`s whose MAC/parameter totals equal a hook count on the module
(a tested invariant).

Example:
    >>> block = InvertedResidual(24, 24, k=5, expand=6, stride=1, dilation=1)
    >>> head = ASPPHead(320, rates=(6, 12, 18), mid_ch=64, num_classes=19)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from qanas.space.layer_specs import expanded_channels

ACTIVATIONS = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "hardswish": nn.Hardswish,
    "hardsigmoid": nn.Hardsigmoid,
    "sigmoid": nn.Sigmoid,
}


def make_activation(name: str | None) -> nn.Module | None:
    """The activation module called `name`, or None for `None` (a linear layer)."""
    if name is None:
        return None
    try:
        return ACTIVATIONS[name](inplace=False) if name != "sigmoid" else nn.Sigmoid()
    except KeyError:
        raise ValueError(f"unknown activation {name!r}; known: {', '.join(ACTIVATIONS)} or None") from None


class ConvBNAct(nn.Sequential):
    """Conv2d (no bias, padding `dilation*(k-1)//2`) → BatchNorm2d → activation (if any).

    Children are named `0`, `1`, `2` like torchvision's `Conv2dNormActivation`.
    """

    def __init__(self, in_ch: int, out_ch: int, k: int, stride: int = 1, dilation: int = 1,
                 groups: int = 1, act: str | None = "relu6"):
        layers: list[nn.Module] = [
            nn.Conv2d(in_ch, out_ch, k, stride, dilation * (k - 1) // 2, dilation, groups, bias=False),
            nn.BatchNorm2d(out_ch),
        ]
        activation = make_activation(act)
        if activation is not None:
            layers.append(activation)
        super().__init__(*layers)


class InvertedResidual(nn.Module):
    """MobileNetV2 inverted residual: [1x1 expand] → kxk depthwise → 1x1 linear projection.

    Args:
        in_ch, out_ch: input and output channels.
        k: depthwise kernel size.
        expand: expansion ratio; hidden width = round(in_ch * expand); 1 omits the expansion conv.
        stride, dilation: of the depthwise conv.
        groups: groups of the two pointwise convs (1 in MobileNetV2).
        act: activation after expansion and depthwise convs.

    The residual `x + conv(x)` is used when stride == 1 and in_ch == out_ch.
    """

    def __init__(self, in_ch: int, out_ch: int, k: int, expand: float, stride: int, dilation: int = 1,
                 groups: int = 1, act: str = "relu6"):
        super().__init__()
        hidden = expanded_channels(in_ch, expand)
        self.use_res = stride == 1 and in_ch == out_ch
        layers: list[nn.Module] = []
        if hidden != in_ch:
            layers.append(ConvBNAct(in_ch, hidden, 1, groups=groups, act=act))
        layers += [
            ConvBNAct(hidden, hidden, k, stride, dilation, groups=hidden, act=act),
            nn.Conv2d(hidden, out_ch, 1, groups=groups, bias=False),
            nn.BatchNorm2d(out_ch),
        ]
        self.conv = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Runs the block, adding the input when the shapes allow a residual."""
        if self.use_res:
            return x + self.conv(x)
        return self.conv(x)


def upsample_to(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Bilinear resize (align_corners=False) of `x` to the spatial size of `like`.

    The size comes from `like.shape`: `torch.fx` records it symbolically, the
    ONNX export emits a `Shape` → `Resize` chain that TVM's ONNX frontend folds
    to a constant size for a static input shape (checked on this machine).
    """
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


class ASPPPooling(nn.Module):
    """Image-pooling branch of ASPP: global average → 1x1 conv-BN-act → resize back."""

    def __init__(self, in_ch: int, out_ch: int, act: str = "relu"):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.conv = ConvBNAct(in_ch, out_ch, 1, act=act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled features broadcast back to the size of `x` (BN needs batch > 1 when training)."""
        return upsample_to(self.conv(self.pool(x)), x)


def _atrous_branch(in_ch: int, out_ch: int, rate: int, depthwise: bool, act: str) -> nn.Module:
    if depthwise:
        return nn.Sequential(ConvBNAct(in_ch, in_ch, 3, dilation=rate, groups=in_ch, act=act),
                             ConvBNAct(in_ch, out_ch, 1, act=act))
    return ConvBNAct(in_ch, out_ch, 3, dilation=rate, act=act)


class ASPPHead(nn.Module):
    """DeepLabV3 head: ASPP (1x1, three atrous 3x3, image pooling) → project → 3x3 → classifier.

    Returns logits at the feature resolution; the segmentation model resizes them.
    `depthwise=True` makes the atrous branches depthwise-separable. `set_rates`
    changes the atrous rates in place (the weights do not depend on the rate).
    """

    def __init__(self, in_ch: int, rates: Sequence[int], mid_ch: int, num_classes: int,
                 depthwise: bool = False, act: str = "relu"):
        super().__init__()
        self.depthwise = depthwise
        branches = [ConvBNAct(in_ch, mid_ch, 1, act=act)]
        branches += [_atrous_branch(in_ch, mid_ch, r, depthwise, act) for r in rates]
        self.branches = nn.ModuleList(branches)
        self.pooling = ASPPPooling(in_ch, mid_ch, act)
        self.project = ConvBNAct(mid_ch * (len(branches) + 1), mid_ch, 1, act=act)
        self.refine = ConvBNAct(mid_ch, mid_ch, 3, act=act)
        self.classifier = nn.Conv2d(mid_ch, num_classes, 1, bias=True)
        self.rates = tuple(int(r) for r in rates)

    def set_rates(self, rates: Sequence[int]) -> None:
        """Sets the dilation (and padding) of the atrous branches to `rates`."""
        if len(rates) != len(self.branches) - 1:
            raise ValueError(f"ASPP has {len(self.branches) - 1} atrous branches, got rates {tuple(rates)}")
        for branch, rate in zip(self.branches[1:], rates, strict=True):
            conv = branch[0][0] if self.depthwise else branch[0]
            conv.dilation = (int(rate), int(rate))
            conv.padding = (int(rate), int(rate))
        self.rates = tuple(int(r) for r in rates)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits at the resolution of `x`."""
        feats = [branch(x) for branch in self.branches]
        feats.append(self.pooling(x))
        y = self.refine(self.project(torch.cat(feats, dim=1)))
        return self.classifier(y)


class LiteDeepLabV3PlusHead(nn.Module):
    """Light DeepLabV3+ head: ASPP without atrous branches, then the DeepLabV3+ decoder.

    The encoder feature goes through a 1x1 conv and the image-pooling branch (the
    ASPP of DeepLab's MobileNetV2 models, which drop the atrous 3x3 branches), a
    1x1 projection, and is resized to the low-level feature; the low-level feature's
    1x1 conv (`low_out` channels) is concatenated with it and one depthwise-separable
    3x3 conv fuses them before the 1x1 classifier. `forward(low, high)` returns
    logits at the low-level feature's resolution.
    """

    def __init__(self, high_ch: int, low_ch: int, mid_ch: int, low_out: int, num_classes: int,
                 act: str = "relu"):
        super().__init__()
        self.b0 = ConvBNAct(high_ch, mid_ch, 1, act=act)
        self.pooling = ASPPPooling(high_ch, mid_ch, act)
        self.project = ConvBNAct(2 * mid_ch, mid_ch, 1, act=act)
        self.low = ConvBNAct(low_ch, low_out, 1, act=act)
        fused = mid_ch + low_out
        self.fuse = nn.Sequential(ConvBNAct(fused, fused, 3, groups=fused, act=act),
                                  ConvBNAct(fused, mid_ch, 1, act=act))
        self.classifier = nn.Conv2d(mid_ch, num_classes, 1, bias=True)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        """Logits at the resolution of `low`."""
        y = self.project(torch.cat([self.b0(high), self.pooling(high)], dim=1))
        y = torch.cat([upsample_to(y, low), self.low(low)], dim=1)
        return self.classifier(self.fuse(y))


class LRASPPHead(nn.Module):
    """Lite R-ASPP (MobileNetV3 segmentation head) over a high- and a low-level feature.

    `forward(low, high)` returns logits at the low-level feature's resolution:
    ``low_classifier(low) + high_classifier(resize(cbr(high) * sigmoid_gate(high)))``.
    """

    def __init__(self, high_ch: int, low_ch: int, mid_ch: int, num_classes: int, act: str = "relu"):
        super().__init__()
        self.cbr = ConvBNAct(high_ch, mid_ch, 1, act=act)
        self.scale = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(high_ch, mid_ch, 1, bias=False),
                                   nn.Sigmoid())
        self.low_classifier = nn.Conv2d(low_ch, num_classes, 1, bias=True)
        self.high_classifier = nn.Conv2d(mid_ch, num_classes, 1, bias=True)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        """Logits at the resolution of `low`."""
        y = self.cbr(high) * self.scale(high)
        y = upsample_to(y, low)
        return self.low_classifier(low) + self.high_classifier(y)


__all__ = [
    "ACTIVATIONS",
    "ASPPHead",
    "ASPPPooling",
    "ConvBNAct",
    "InvertedResidual",
    "LRASPPHead",
    "LiteDeepLabV3PlusHead",
    "make_activation",
    "upsample_to",
]
