"""Building blocks of the SqueezeNAS spaces: grouped inverted residuals, skips, heads.

Every module here is static and built only from ops the int8 compiler takes
(Conv2d, BatchNorm2d, ReLU/ReLU6, Sigmoid, Identity, AdaptiveAvgPool2d(1), `+`,
`*`, `torch.cat`, bilinear `F.interpolate`), so that an extracted subnet traces
with `torch.fx` and exports to ONNX. `ChoiceBlock` is the one dynamic module.

`ConvBNAct`, `upsample_to` and `LRASPPHead` come from `qanas.supernet.blocks`
(the MobileNetV2 spaces). What is added here: the inverted residual whose 1x1
expansion conv exists also for e=1 (`blocks.InvertedResidual` omits it, so its
`k3e1g2` would group only the projection), the projection skip, `ChoiceBlock`
the released SqueezeNAS-XLarge decoder (`SqueezeNASASPPHead`) and the released LR-ASPP
with its windowed gate pool (`WindowedLRASPPHead`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from qanas.space.squeezenas import SKIP, OpSpec
from qanas.supernet.blocks import ConvBNAct, LRASPPHead, upsample_to


class GroupedInvertedResidual(nn.Module):
    """1x1 expand (groups g) -> kxk depthwise (stride, dilation) -> 1x1 project (groups g).

    The expansion conv exists also for expand=1. No channel shuffle: groups must
    divide the input and output channels (a `ValueError` says which do not).
    The residual add is used when stride is 1 and the channels are kept. `act` is the
    activation after the expansion and depthwise convs.
    """

    def __init__(self, in_ch: int, out_ch: int, stride: int, spec: OpSpec, act: str = "relu6"):
        super().__init__()
        hidden = in_ch * spec.expand
        if in_ch % spec.groups or out_ch % spec.groups:
            raise ValueError(
                f"{spec.label}: groups={spec.groups} must divide the channels {in_ch} -> {out_ch} "
                "(there is no channel shuffle); use groups=1 for this block"
            )
        self.expand = ConvBNAct(in_ch, hidden, 1, groups=spec.groups, act=act)
        self.dw = ConvBNAct(hidden, hidden, spec.kernel, stride, spec.dilation, groups=hidden,
                            act=act)
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


def make_candidate(label: str, in_ch: int, out_ch: int, stride: int,
                   act: str = "relu6") -> nn.Module:
    """The static module of candidate `label` for a superblock of the given shape."""
    if label == SKIP:
        return make_skip(in_ch, out_ch, stride)
    return GroupedInvertedResidual(in_ch, out_ch, stride, OpSpec.parse(label), act)


class ChoiceBlock(nn.Module):
    """A superblock holding every candidate as its own module (FairNAS / SqueezeNAS style).

    `active` is the index (into `labels`) of the candidate that `forward` runs.
    """

    def __init__(self, labels: tuple[str, ...], in_ch: int, out_ch: int, stride: int,
                 act: str = "relu6"):
        super().__init__()
        self.labels = tuple(labels)
        self.candidates = nn.ModuleList(make_candidate(lb, in_ch, out_ch, stride, act)
                                        for lb in labels)
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

    ASPP on the high-level features, upsampled (bilinear, `align_corners` as the released
    code's True or our False) and concatenated with a 1x1 conv (bias, no BN or
    activation) of the low-level features that keeps their width, a 3x3 depthwise
    conv-BN-ReLU over the concatenation, and a 1x1 classifier.
    """

    def __init__(self, high_ch: int, low_ch: int, num_classes: int,
                 rates: tuple[int, ...] = (6, 12, 18), mid_ch: int = 160,
                 align_corners: bool = False):
        super().__init__()
        self.align_corners = align_corners
        self.aspp = SqueezeNASASPP(high_ch, rates, mid_ch)
        self.low_proj = nn.Conv2d(low_ch, low_ch, 1)
        fused = mid_ch + low_ch
        self.fuse = ConvBNAct(fused, fused, 3, groups=fused, act="relu")
        self.classifier = nn.Conv2d(fused, num_classes, 1)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        """Logits (N, classes, *low.shape[-2:]); argument order as `blocks.LRASPPHead`."""
        x = self.aspp(high)
        low = self.low_proj(low)
        x = F.interpolate(x, size=low.shape[-2:], mode="bilinear",
                          align_corners=self.align_corners)
        x = torch.cat([x, low], dim=1)
        return self.classifier(self.fuse(x))


class WindowedLRASPPHead(LRASPPHead):
    """The released SqueezeNAS LR-ASPP: the gate average-pools `window`x`window` windows at
    `stride` (not globally), its 1x1 conv has a bias when `bias`, and the gate is resized
    (bilinear) back to the feature map before the product. Keys as `LRASPPHead`'s.
    """

    def __init__(self, high_ch: int, low_ch: int, mid_ch: int, num_classes: int,
                 window: int, stride: tuple[int, int], bias: bool):
        super().__init__(high_ch, low_ch, mid_ch, num_classes)
        self.scale = nn.Sequential(nn.AvgPool2d(window, stride, count_include_pad=False),
                                   nn.Conv2d(high_ch, mid_ch, 1, bias=bias), nn.Sigmoid())

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        """Logits at the resolution of `low`."""
        y = self.cbr(high)
        y = y * upsample_to(self.scale(high), y)
        return self.low_classifier(low) + self.high_classifier(upsample_to(y, low))
