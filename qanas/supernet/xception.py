"""DeepLabV3+ on the modified aligned Xception: the `fmas-xception` supernet and its subnets.

No weight of this network depends on a decision of the space (strides and atrous
rates change only a conv's stride, dilation and padding; keep/drop removes a whole
middle block), so the supernet holds plain static modules: `set_active` sets the
strides and rates in place and `extract` deep-copies the kept modules. Layout and
plan come from `qanas.space.fmas_xception`, as do the analytic layer specs, whose
MAC and parameter totals equal a hook count on `extract(cfg)` (a tested invariant).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
from torch import nn

from qanas.space.base import SubnetConfig
from qanas.space.fmas_xception import (
    ENTRY,
    ENTRY_FIXED_STRIDES,
    EXIT_BLOCK,
    EXIT_CONVS,
    HEAD_CHANNELS,
    LOW_AFTER_ENTRY,
    LOW_CHANNELS,
    MIDDLE_BLOCKS,
    MIDDLE_WIDTH,
    STEM,
    FMASXceptionSpace,
    XceptionPlan,
)
from qanas.supernet.base import Supernet
from qanas.supernet.blocks import ASPPPooling, ConvBNAct, upsample_to
from qanas.supernet.registry import register_supernet


def _set_conv(conv: nn.Conv2d, stride: int, dilation: int) -> None:
    """Sets a conv's stride and dilation, with the 'same'-style padding ``dilation * (k - 1) // 2``."""
    pad = dilation * (conv.kernel_size[0] - 1) // 2
    conv.stride, conv.dilation, conv.padding = (stride, stride), (dilation, dilation), (pad, pad)


class SeparableConv(nn.Sequential):
    """Depthwise 3×3 → BN → ReLU → pointwise 1×1 → BN → ReLU (children `dw`, `pw`)."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1, dilation: int = 1):
        super().__init__()
        self.dw = ConvBNAct(in_ch, in_ch, 3, stride, dilation, groups=in_ch, act="relu")
        self.pw = ConvBNAct(in_ch, out_ch, 1, act="relu")

    def configure(self, stride: int, dilation: int) -> None:
        """Sets the depthwise conv's stride and atrous rate."""
        _set_conv(self.dw[0], stride, dilation)


class XceptionBlock(nn.Module):
    """Separable convs of `widths` (the last one strided) plus a shortcut.

    Args:
        in_ch: input channels.
        widths: output channels of each separable conv.
        shortcut: "conv" (strided 1×1 conv + BN), "sum" (identity) or "none".
    """

    def __init__(self, in_ch: int, widths: Sequence[int], shortcut: str, stride: int = 1):
        super().__init__()
        chans = (in_ch, *widths)
        self.convs = nn.Sequential(*(SeparableConv(chans[i], chans[i + 1]) for i in range(len(widths))))
        self.shortcut = ConvBNAct(in_ch, widths[-1], 1, stride, act=None) if shortcut == "conv" else None
        self.use_res = shortcut == "sum"  # read by the gumbel gates: only the branch is scaled
        self.configure(stride, 1)

    def configure(self, stride: int, dilation: int) -> None:
        """Sets the stride (last separable conv and the shortcut) and the atrous rate of every conv."""
        for i, conv in enumerate(self.convs):
            conv.configure(stride if i == len(self.convs) - 1 else 1, dilation)
        if self.shortcut is not None:
            _set_conv(self.shortcut[0], stride, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The separable convs' output plus the shortcut."""
        y = self.convs(x)
        if self.shortcut is not None:
            return y + self.shortcut(x)
        return x + y if self.use_res else y


class DeepLabV3PlusHead(nn.Module):
    """DeepLabV3+ head: separable ASPP, then the decoder over a low-level feature.

    `forward(low, high)` returns logits at the resolution of `low`.
    """

    def __init__(self, high_ch: int, low_ch: int, rates: Sequence[int], num_classes: int):
        super().__init__()
        mid = HEAD_CHANNELS
        self.aspp = nn.ModuleList([ConvBNAct(high_ch, mid, 1, act="relu")]
                                  + [SeparableConv(high_ch, mid) for _ in rates])
        self.pooling = ASPPPooling(high_ch, mid)
        self.project = ConvBNAct(mid * (len(rates) + 2), mid, 1, act="relu")
        self.low = ConvBNAct(low_ch, LOW_CHANNELS, 1, act="relu")
        self.decoder = nn.Sequential(SeparableConv(mid + LOW_CHANNELS, mid), SeparableConv(mid, mid))
        self.classifier = nn.Conv2d(mid, num_classes, 1, bias=True)
        self.set_rates(rates)

    def set_rates(self, rates: Sequence[int]) -> None:
        """Sets the atrous rates of the ASPP's separable branches."""
        for branch, rate in zip(self.aspp[1:], rates, strict=True):
            branch.configure(1, int(rate))
        self.rates = tuple(int(r) for r in rates)

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
        """Logits at the resolution of `low`."""
        feats = [branch(high) for branch in self.aspp] + [self.pooling(high)]
        y = upsample_to(self.project(torch.cat(feats, dim=1)), low)
        return self.classifier(self.decoder(torch.cat([y, self.low(low)], dim=1)))


class XceptionSeg(nn.Module):
    """DeepLabV3+ Xception network; runs the middle blocks listed in `kept` (all when None)."""

    def __init__(self, stem: nn.Sequential, entry: nn.ModuleList, middle: nn.ModuleList,
                 exit_block: XceptionBlock, exit_convs: XceptionBlock, head: DeepLabV3PlusHead,
                 kept: Sequence[int] | None = None):
        super().__init__()
        self.stem, self.entry, self.middle = stem, entry, middle
        self.exit_block, self.exit_convs, self.head = exit_block, exit_convs, head
        self.kept = tuple(range(len(middle))) if kept is None else tuple(kept)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, num_classes, H, W) at the input resolution."""
        y = self.stem(x)
        low = y
        for i, block in enumerate(self.entry):
            y = block(y)
            if i == LOW_AFTER_ENTRY:
                low = y
        for i in self.kept:
            y = self.middle[i](y)
        y = self.exit_convs(self.exit_block(y))
        return upsample_to(self.head(low, y), x)


def _build(num_classes: int, rates: Sequence[int]) -> XceptionSeg:
    stem, ch = [], 3
    for width, stride in STEM:
        stem.append(ConvBNAct(ch, width, 3, stride, act="relu"))
        ch = width
    entry = []
    for widths, stride in zip(ENTRY, ENTRY_FIXED_STRIDES + (2,), strict=True):
        entry.append(XceptionBlock(ch, widths, "conv", stride))
        ch = widths[-1]
    middle = [XceptionBlock(MIDDLE_WIDTH, (MIDDLE_WIDTH,) * 3, "sum") for _ in range(MIDDLE_BLOCKS)]
    exit_block = XceptionBlock(ch, EXIT_BLOCK, "conv")
    exit_convs = XceptionBlock(EXIT_BLOCK[-1], EXIT_CONVS, "none")
    head = DeepLabV3PlusHead(EXIT_CONVS[-1], ENTRY[LOW_AFTER_ENTRY][-1], rates, num_classes)
    return XceptionSeg(nn.Sequential(*stem), nn.ModuleList(entry), nn.ModuleList(middle), exit_block,
                       exit_convs, head)


@register_supernet(FMASXceptionSpace)
class XceptionSupernet(Supernet):
    """Weight-sharing supernet of `fmas-xception`: one `XceptionSeg` whose strides, rates and
    kept middle blocks follow the active subnet."""

    def __init__(self, space: FMASXceptionSpace, num_classes: int):
        super().__init__(space, num_classes)
        self.net = _build(num_classes, space.plan(space.max_config()).aspp_rates)
        self.set_active(space.max_config())

    def gate_modules(self) -> dict[str, nn.Module]:
        """The units of `FMASXceptionSpace.gate_units`: entry block 3, each middle block, the
        exit block, the exit convs and the head."""
        units: dict[str, nn.Module] = {"entry.2": self.net.entry[2]}
        units.update({f"middle.{i}": block for i, block in enumerate(self.net.middle)})
        units.update({"exit_block": self.net.exit_block, "exit_convs": self.net.exit_convs,
                      "head": self.net.head})
        return units

    def _configure(self, plan: XceptionPlan) -> None:
        self.net.entry[2].configure(plan.entry_stride, 1)
        for block in self.net.middle:
            block.configure(1, plan.middle_rate)
        self.net.exit_block.configure(1, plan.exit_rates[0])
        self.net.exit_convs.configure(1, plan.exit_rates[1])
        self.net.head.set_rates(plan.aspp_rates)
        self.net.kept = plan.kept

    def _apply_active(self, cfg: SubnetConfig) -> None:
        self._configure(self.space.plan(cfg))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the active subnet at the input resolution."""
        return self.net(x)

    def extract(self, cfg: SubnetConfig) -> XceptionSeg:
        """Static `XceptionSeg` for `cfg` with copied weights; the active path is left unchanged."""
        plan = self.space.plan(cfg)
        self._configure(plan)
        try:
            net = self.net
            model = XceptionSeg(copy.deepcopy(net.stem), copy.deepcopy(net.entry),
                                nn.ModuleList(copy.deepcopy(net.middle[i]) for i in plan.kept),
                                copy.deepcopy(net.exit_block), copy.deepcopy(net.exit_convs),
                                copy.deepcopy(net.head))
        finally:
            self._configure(self.space.plan(self.active))
        return model.train(self.training)


__all__ = ["DeepLabV3PlusHead", "SeparableConv", "XceptionBlock", "XceptionSeg", "XceptionSupernet"]
