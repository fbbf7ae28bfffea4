"""MobileNetV2 encoder + DeepLabV3 / LR-ASPP / light DeepLabV3+ supernet of `mbv2-deeplab` and `fmas-mbv2`.

A space describes its supernet with an `MBV2Layout` (the max size of each of
MobileNetV2's inverted-residual positions `features.2` … `features.17`, and the
heads it offers) and maps a `SubnetConfig` to an `MBV2Plan` (the kept blocks
with their kernel, expansion, input width, stride and dilation, plus the head);
both are descriptions, in `qanas.space.mbv2_layout`. The same plan drives
`set_active`, `extract` and the analytic `plan_layer_specs`, so the three cannot
disagree.

Fixed parts: the stem (`features.0`, 3×3 stride-2 conv, 32 channels) and
`features.1` (expansion-1 block, 16 channels), both ReLU6 as in MobileNetV2.
Heads use ReLU. Logits are resized bilinearly to the input size.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from qanas.space.base import SubnetConfig
from qanas.space.mbv2_layout import (
    FIRST_BLOCK_CH,
    STEM_CH,
    MBV2Layout,
    MBV2Plan,
)
from qanas.space.mbv2_plan import MobileNetV2PlanSpace
from qanas.supernet.base import Supernet
from qanas.supernet.blocks import (
    ASPPHead,
    ConvBNAct,
    InvertedResidual,
    LiteDeepLabV3PlusHead,
    LRASPPHead,
    upsample_to,
)
from qanas.supernet.dynamic_ops import DynamicInvertedResidual
from qanas.supernet.registry import register_supernet


def _stem() -> nn.Module:
    return ConvBNAct(3, STEM_CH, 3, stride=2, act="relu6")


def _first_block() -> nn.Module:
    return InvertedResidual(STEM_CH, FIRST_BLOCK_CH, 3, 1, 1, act="relu6")


class MobileNetV2Seg(nn.Module):
    """Static segmentation network extracted from the supernet.

    `low` runs the encoder up to the LR-ASPP tap, `high` the rest; the head sees
    `high`'s output (ASPP) or both (LR-ASPP). Logits are resized to the input.
    """

    def __init__(self, low: nn.Sequential, high: nn.Sequential, head: nn.Module, use_low: bool):
        super().__init__()
        self.low, self.high, self.head, self.use_low = low, high, head, use_low

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder output (before the head)."""
        return self.high(self.low(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, num_classes, H, W) at the input resolution."""
        low = self.low(x)
        high = self.high(low)
        logits = self.head(low, high) if self.use_low else self.head(high)
        return upsample_to(logits, x)


@register_supernet(MobileNetV2PlanSpace)
class MobileNetV2Supernet(Supernet):
    """Weight-sharing MobileNetV2 supernet; the space supplies `layout` and `plan(cfg)`.

    `features` follows torchvision's MobileNetV2 indices (0: stem, 1: the
    expansion-1 block, 2–17: `DynamicInvertedResidual`s), so pretrained
    torchvision weights load by name (see `qanas.supernet.pretrained`).
    """

    def __init__(self, space: MobileNetV2PlanSpace, num_classes: int, layout: MBV2Layout | None = None):
        super().__init__(space, num_classes)
        self.layout = layout = space.layout() if layout is None else layout
        features: list[nn.Module] = [_stem(), _first_block()]
        features += [DynamicInvertedResidual(s.max_in, s.out_ch, s.max_kernel, s.max_expand) for s in layout.slots]
        self.features = nn.ModuleList(features)
        self.aspp = self.lraspp = self.lite_plus = None
        low_ch = layout.channels_after(layout.low_after)
        if layout.aspp_channels is not None:
            self.aspp = ASPPHead(layout.encoder_channels, layout.aspp_rates, layout.aspp_channels, num_classes)
        if layout.lraspp_channels is not None:
            self.lraspp = LRASPPHead(layout.encoder_channels, low_ch, layout.lraspp_channels, num_classes)
        if layout.lite_plus_channels is not None:
            self.lite_plus = LiteDeepLabV3PlusHead(layout.encoder_channels, low_ch, *layout.lite_plus_channels,
                                                   num_classes)
        self._plan: MBV2Plan | None = None
        self.set_active(space.max_config())

    def gate_modules(self) -> dict[str, nn.Module]:
        """``features.<i>`` (the searchable blocks) and ``head.<name>`` of each head the layout has."""
        units = {f"features.{i}": self.features[i] for i in range(2, len(self.features))}
        for name in ("aspp", "lraspp", "lite_plus"):
            if getattr(self, name) is not None:
                units[f"head.{name}"] = getattr(self, name)
        return units

    def _apply_active(self, cfg: SubnetConfig) -> None:
        plan = self.space.plan(cfg)
        for ab in plan.blocks:
            self.features[ab.index].configure(ab.in_ch, ab.kernel, ab.expand, ab.stride, ab.dilation)
        if plan.head == "aspp":
            self.aspp.set_rates(plan.rates)
        self._plan = plan

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits of the active subnet at the input resolution."""
        plan = self._plan
        y = self.features[1](self.features[0](x))
        low = y
        for ab in plan.blocks:
            y = self.features[ab.index](y)
            if ab.index <= self.layout.low_after:
                low = y
        head = getattr(self, plan.head)
        logits = head(y) if plan.head == "aspp" else head(low, y)
        return upsample_to(logits, x)

    def extract(self, cfg: SubnetConfig) -> MobileNetV2Seg:
        """Static `MobileNetV2Seg` for `cfg` with copied weights; the active path is left unchanged."""
        self.space.validate(cfg)
        plan = self.space.plan(cfg)
        low: list[nn.Module] = [copy.deepcopy(self.features[0]), copy.deepcopy(self.features[1])]
        high: list[nn.Module] = []
        for ab in plan.blocks:
            block = self.features[ab.index]
            saved = (block.in_ch, block.kernel, block.expand, block.stride, block.dilation)
            block.configure(ab.in_ch, ab.kernel, ab.expand, ab.stride, ab.dilation)
            (low if ab.index <= self.layout.low_after else high).append(block.to_static())
            block.configure(*saved)
        head = copy.deepcopy(getattr(self, plan.head))
        if plan.head == "aspp":
            head.set_rates(plan.rates)
        model = MobileNetV2Seg(nn.Sequential(*low), nn.Sequential(*high), head, plan.head != "aspp")
        return model.train(self.training)


__all__ = [
    "MobileNetV2Seg",
    "MobileNetV2Supernet",
]
