"""What a MobileNetV2-based space says about its networks: the supernet's layout and a plan.

`MBV2Layout` is the shape of the supernet (the max size of each inverted-residual
position `features.2` … `features.17`, and the heads it offers); `MBV2Plan` is one
subnet (the kept blocks with their kernel, expansion, input width, stride and
dilation, plus the head). `qanas.supernet.mbv2.MobileNetV2Supernet` builds the
modules from them; `plan_layer_specs` gives the analytic layers of a plan.

Fixed parts: the stem (`features.0`, 3×3 stride-2 conv, `STEM_CH` channels) and
`features.1` (expansion-1 block, `FIRST_BLOCK_CH` channels).
"""

from __future__ import annotations

from dataclasses import dataclass

from qanas.space.layer_specs import (
    aspp_specs,
    conv_bn_act_specs,
    conv_out_hw,
    inverted_residual_specs,
    lite_plus_specs,
    lraspp_specs,
)
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
        aspp_channels: ASPP width (DeepLabV3 uses 256), or None when the space has no ASPP head.
        aspp_rates: initial atrous rates (a plan may change them).
        lraspp_channels: LR-ASPP width, or None when the space has no LR-ASPP head.
        low_after: features index whose output (after all kept blocks up to it) is
            the low-level input of LR-ASPP and of the light DeepLabV3+ head.
        lite_plus_channels: (width, low-level 1x1 width) of the light DeepLabV3+ head
            (`qanas.supernet.blocks.LiteDeepLabV3PlusHead`), or None when the space has none.
    """

    slots: tuple[BlockSlot, ...]
    aspp_channels: int | None = 256
    aspp_rates: tuple[int, ...] = (6, 12, 18)
    lraspp_channels: int | None = None
    low_after: int = 6
    lite_plus_channels: tuple[int, int] | None = None

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
    """A subnet of an `MBV2Layout`: kept blocks (in order) and the head ("aspp", "lraspp" or
    "lite_plus"; `rates` only matter to "aspp")."""

    blocks: tuple[ActiveBlock, ...]
    head: str
    rates: tuple[int, ...] = (6, 12, 18)


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
    elif plan.head == "lite_plus":
        mid_ch, low_out = layout.lite_plus_channels
        specs += lite_plus_specs("head", layout.encoder_channels, low_ch, mid_ch, low_out, num_classes,
                                 hw, low_hw)
        logits_hw = low_hw
    else:
        specs += aspp_specs("head", layout.encoder_channels, hw, plan.rates, layout.aspp_channels, num_classes)
        logits_hw = hw
    specs.append(LayerSpec("resize", "upsample", num_classes, num_classes, logits_hw, tuple(image_size)))
    return specs


__all__ = ["FIRST_BLOCK_CH", "FIRST_SEARCHABLE", "STEM_CH", "ActiveBlock", "BlockSlot",
           "MBV2Layout", "MBV2Plan", "plan_layer_specs"]
