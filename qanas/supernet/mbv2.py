"""MobileNetV2 encoder + DeepLabV3 / LR-ASPP supernet shared by `mbv2-deeplab` and `fmas-mbv2`.

A space describes its supernet with an `MBV2Layout` (the max size of each of
MobileNetV2's inverted-residual positions `features.2` … `features.17`, and the
heads it offers) and maps a `SubnetConfig` to an `MBV2Plan` (the kept blocks
with their kernel, expansion, input width, stride and dilation, plus the head).
The same plan drives `set_active`, `extract` and the analytic `plan_layer_specs`,
so the three cannot disagree.

Fixed parts: the stem (`features.0`, 3×3 stride-2 conv, 32 channels) and
`features.1` (expansion-1 block, 16 channels), both ReLU6 as in MobileNetV2.
Heads use ReLU. Logits are resized bilinearly to the input size.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
from torch import nn

from qanas.space.base import SearchSpace, SubnetConfig
from qanas.supernet.base import Supernet
from qanas.supernet.blocks import (
    ASPPHead,
    ConvBNAct,
    InvertedResidual,
    LRASPPHead,
    aspp_specs,
    conv_bn_act_specs,
    conv_out_hw,
    inverted_residual_specs,
    lraspp_specs,
    upsample_to,
)
from qanas.supernet.dynamic_ops import DynamicInvertedResidual
from targets.cost import LayerSpec

STEM_CH = 32
FIRST_BLOCK_CH = 16
FIRST_SEARCHABLE = 2  # features index of the first searchable block


@dataclass(frozen=True)
class BlockSlot:
    """Weights held for one inverted-residual position: max input width, output width, max kernel/expansion."""

    max_in: int
    out_ch: int
    max_kernel: int
    max_expand: float


@dataclass(frozen=True)
class MBV2Layout:
    """Shape of a MobileNetV2 supernet.

    Attributes:
        slots: `features.2` … in order.
        aspp_channels: ASPP width (DeepLabV3 uses 256).
        aspp_rates: initial atrous rates (a plan may change them).
        lraspp_channels: LR-ASPP width, or None when the space has no LR-ASPP head.
        low_after: features index whose output (after all kept blocks up to it) is
            LR-ASPP's low-level input.
    """

    slots: tuple[BlockSlot, ...]
    aspp_channels: int = 256
    aspp_rates: tuple[int, ...] = (6, 12, 18)
    lraspp_channels: int | None = None
    low_after: int = 6

    @property
    def encoder_channels(self) -> int:
        """Channels of the encoder output (the last slot's width)."""
        return self.slots[-1].out_ch

    def channels_after(self, index: int) -> int:
        """Output width of the features position `index`."""
        return FIRST_BLOCK_CH if index == 1 else self.slots[index - FIRST_SEARCHABLE].out_ch


@dataclass(frozen=True)
class ActiveBlock:
    """One kept block of a subnet: features index and its active settings."""

    index: int
    in_ch: int
    kernel: int
    expand: float
    stride: int
    dilation: int


@dataclass(frozen=True)
class MBV2Plan:
    """A subnet of an `MBV2Layout`: kept blocks (in order) and the head ("aspp" or "lraspp")."""

    blocks: tuple[ActiveBlock, ...]
    head: str
    rates: tuple[int, ...] = (6, 12, 18)


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


class MobileNetV2Supernet(Supernet):
    """Weight-sharing MobileNetV2 supernet; the space supplies `layout` and `plan(cfg)`.

    `features` follows torchvision's MobileNetV2 indices (0: stem, 1: the
    expansion-1 block, 2–17: `DynamicInvertedResidual`s), so pretrained
    torchvision weights load by name (see `qanas.supernet.pretrained`).
    """

    def __init__(self, space: SearchSpace, num_classes: int, layout: MBV2Layout):
        super().__init__(space, num_classes)
        self.layout = layout
        features: list[nn.Module] = [_stem(), _first_block()]
        features += [DynamicInvertedResidual(s.max_in, s.out_ch, s.max_kernel, s.max_expand) for s in layout.slots]
        self.features = nn.ModuleList(features)
        self.aspp = ASPPHead(layout.encoder_channels, layout.aspp_rates, layout.aspp_channels, num_classes)
        self.lraspp = None
        if layout.lraspp_channels is not None:
            self.lraspp = LRASPPHead(layout.encoder_channels, layout.channels_after(layout.low_after),
                                     layout.lraspp_channels, num_classes)
        self._plan: MBV2Plan | None = None
        self.set_active(space.max_config())

    def gate_modules(self) -> dict[str, nn.Module]:
        """``features.<i>`` (the searchable blocks), ``head.aspp`` and ``head.lraspp``."""
        units = {f"features.{i}": self.features[i] for i in range(2, len(self.features))}
        units["head.aspp"] = self.aspp
        if self.lraspp is not None:
            units["head.lraspp"] = self.lraspp
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
        logits = self.lraspp(low, y) if plan.head == "lraspp" else self.aspp(y)
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
        if plan.head == "lraspp":
            head = copy.deepcopy(self.lraspp)
        else:
            head = copy.deepcopy(self.aspp)
            head.set_rates(plan.rates)
        model = MobileNetV2Seg(nn.Sequential(*low), nn.Sequential(*high), head, plan.head == "lraspp")
        return model.train(self.training)


def plan_layer_specs(layout: MBV2Layout, plan: MBV2Plan, image_size: tuple[int, int],
                     num_classes: int) -> list[LayerSpec]:
    """Analytic layer specs of the network `MobileNetV2Supernet.extract` builds for `plan`."""
    hw = (int(image_size[0]), int(image_size[1]))
    specs = conv_bn_act_specs("features.0", 3, STEM_CH, hw, 3, 2, act="relu6")
    hw = conv_out_hw(hw, 3, 2, 1)
    specs += inverted_residual_specs("features.1", STEM_CH, FIRST_BLOCK_CH, hw, 3, 1, 1)
    low_hw, low_ch = hw, FIRST_BLOCK_CH
    for ab in plan.blocks:
        out_ch = layout.slots[ab.index - FIRST_SEARCHABLE].out_ch
        specs += inverted_residual_specs(f"features.{ab.index}", ab.in_ch, out_ch, hw, ab.kernel,
                                         ab.expand, ab.stride, ab.dilation)
        hw = conv_out_hw(hw, ab.kernel, ab.stride, ab.dilation)
        if ab.index <= layout.low_after:
            low_hw, low_ch = hw, out_ch
    if plan.head == "lraspp":
        specs += lraspp_specs("head", layout.encoder_channels, low_ch, layout.lraspp_channels, num_classes,
                              hw, low_hw)
        logits_hw = low_hw
    else:
        specs += aspp_specs("head", layout.encoder_channels, hw, plan.rates, layout.aspp_channels, num_classes)
        logits_hw = hw
    specs.append(LayerSpec("resize", "upsample", num_classes, num_classes, logits_hw, tuple(image_size)))
    return specs


__all__ = [
    "ActiveBlock",
    "BlockSlot",
    "MBV2Layout",
    "MBV2Plan",
    "MobileNetV2Seg",
    "MobileNetV2Supernet",
    "plan_layer_specs",
]
