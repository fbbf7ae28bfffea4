"""Building blocks of the SqueezeNAS spaces: grouped inverted residuals, skips, heads.

Every module here is static and built only from ops the int8 compiler takes
(Conv2d, BatchNorm2d, ReLU/ReLU6, Sigmoid, Identity, AdaptiveAvgPool2d(1), `+`,
`*`, `torch.cat`, bilinear `F.interpolate`), so that an extracted subnet traces
with `torch.fx` and exports to ONNX. `ChoiceBlock` is the one dynamic module.

`ConvBNAct`, `upsample_to` and `LRASPPHead` come from `qanas.supernet.blocks`
(the MobileNetV2 spaces). What is added here: the inverted residual whose 1x1
expansion conv exists also for e=1 (`blocks.InvertedResidual` omits it, so its
`k3e1g2` would group only the projection), the projection skip, `ChoiceBlock`
and the released SqueezeNAS-XLarge decoder (`SqueezeNASASPPHead`).
"""

from __future__ import annotations

import torch
from torch import nn

from qanas.space.squeezenas import SKIP, OpSpec
from qanas.supernet.blocks import ConvBNAct, upsample_to


class GroupedInvertedResidual(nn.Module):
    """1x1 expand (groups g) -> kxk depthwise (stride, dilation) -> 1x1 project (groups g).

    The expansion conv exists also for expand=1. No channel shuffle: groups must
    divide the input and output channels (a `ValueError` says which do not).
    The residual add is used when stride is 1 and the channels are kept.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int, spec: OpSpec):
        super().__init__()
        hidden = in_ch * spec.expand
        if in_ch % spec.groups or out_ch % spec.groups:
            raise ValueError(
                f"{spec.label}: groups={spec.groups} must divide the channels {in_ch} -> {out_ch} "
                "(there is no channel shuffle); use groups=1 for this block"
            )
        self.expand = ConvBNAct(in_ch, hidden, 1, groups=spec.groups)
        self.dw = ConvBNAct(hidden, hidden, spec.kernel, stride, spec.dilation, groups=hidden)
        self.project = ConvBNAct(hidden, out_ch, 1, groups=spec.groups, act=None)
        self.use_residual = stride == 1 and in_ch == out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Applies the block (with the residual add when shapes allow)."""
        out = self.project(self.dw(self.expand(x)))
        return x + out if self.use_residual else out


def make_skip(in_ch: int, out_ch: int, stride: int) -> nn.Module:
    """The `skip` candidate: identity if the shape is kept, else 1x1 conv (stride) + BN."""
    if stride == 1 and in_ch == out_ch:
        return nn.Identity()
    return ConvBNAct(in_ch, out_ch, 1, stride, act=None)


def make_candidate(label: str, in_ch: int, out_ch: int, stride: int) -> nn.Module:
    """The static module of candidate `label` for a superblock of the given shape."""
    if label == SKIP:
        return make_skip(in_ch, out_ch, stride)
    return GroupedInvertedResidual(in_ch, out_ch, stride, OpSpec.parse(label))


class ChoiceBlock(nn.Module):
    """A superblock holding every candidate as its own module (FairNAS / SqueezeNAS style).

    `active` is the index (into `labels`) of the candidate that `forward` runs.
    """

    def __init__(self, labels: tuple[str, ...], in_ch: int, out_ch: int, stride: int):
        super().__init__()
        self.labels = tuple(labels)
        self.candidates = nn.ModuleList(make_candidate(lb, in_ch, out_ch, stride) for lb in labels)
        self.active = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Runs the active candidate."""
        return self.candidates[self.active](x)


class SqueezeNASASPP(nn.Module):
    """The released SqueezeNAS-XLarge ASPP: a 1x1 branch, grouped atrous 3x3 branches
    (groups = the output width) and the globally pooled input itself, then a 1x1 projection.
    """

    def __init__(self, in_ch: int, rates: tuple[int, ...], mid_ch: int):
        super().__init__()
        self.b0 = ConvBNAct(in_ch, mid_ch, 1, act="relu")
        self.atrous = nn.ModuleList(
            ConvBNAct(in_ch, mid_ch, 3, dilation=r, groups=mid_ch, act="relu") for r in rates)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.project = ConvBNAct(mid_ch * (len(rates) + 1) + in_ch, mid_ch, 1, act="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ASPP features (N, mid_ch, H, W)."""
        branches = [self.b0(x)] + [branch(x) for branch in self.atrous]
        branches.append(upsample_to(self.pool(x), x))
        return self.project(torch.cat(branches, dim=1))


class SqueezeNASASPPHead(nn.Module):
    """The released SqueezeNAS-XLarge decoder, returning logits at the low-level resolution.

    ASPP on the high-level features, upsampled and concatenated with a 1x1 conv (bias, no
    BN or activation) of the low-level features that keeps their width, a 3x3 depthwise
    conv-BN-ReLU over the concatenation, and a 1x1 classifier.
    """

    def __init__(self, high_ch: int, low_ch: int, num_classes: int,
                 rates: tuple[int, ...] = (6, 12, 18), mid_ch: int = 160):
        super().__init__()
        self.aspp = SqueezeNASASPP(high_ch, rates, mid_ch)
        self.low_proj = nn.Conv2d(low_ch, low_ch, 1)
        fused = mid_ch + low_ch
        self.fuse = ConvBNAct(fused, fused, 3, groups=fused, act="relu")
        self.classifier = nn.Conv2d(fused, num_classes, 1)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        """Logits (N, classes, *low.shape[-2:]); argument order as `blocks.LRASPPHead`."""
        x = self.aspp(high)
        low = self.low_proj(low)
        x = torch.cat([upsample_to(x, low), low], dim=1)
        return self.classifier(self.fuse(x))
