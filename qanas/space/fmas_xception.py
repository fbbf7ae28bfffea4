"""`fmas-xception`: the FMAS Xception space (Xiong et al., 2023, Table 1), DeepLabV3+ on the
modified aligned Xception of Chen et al. (2018).

The network (`qanas.supernet.xception`), in DeepLabV3+'s Xception-65 layout:

* stem: 3×3 conv 32 stride 2, 3×3 conv 64;
* entry flow: three blocks of three separable convs (128, 256, 728 wide) with a
  strided 1×1 conv shortcut; the stride sits in each block's last separable conv;
* middle flow: 16 blocks of three 728-wide separable convs with identity shortcuts;
* exit flow: a block (728, 1024, 1024) with a 1×1 conv shortcut, then three
  separable convs (1536, 1536, 2048) without a shortcut;
* DeepLabV3+ head: separable ASPP (1×1, three atrous separable 3×3 and image
  pooling, 256 wide, 1×1 projection), decoder (48-channel 1×1 of the entry flow's
  first block output at stride 4, two separable 3×3 convs of 256, 1×1 classifier).

A separable conv is depthwise 3×3 → BN → ReLU → pointwise 1×1 → BN → ReLU (DeepLabV3+
adds the BN and ReLU after each depthwise conv); a block's output is the sum of its
last separable conv and its shortcut.

Decisions (20), in order:

* ``entry``: stride {1, 2, 3, 4} of the entry flow's third block. Interpretation: the
  paper's table lists "entry flow stride" with these values; DeepLabV3+ sets exactly
  this block's stride (1 for output stride 8, 2 for 16), and the other decisions below
  are the other knobs DeepLabV3+'s output-stride setting turns, so we read it as that
  block's stride value, with 3 and 4 coarser still (the stem and the first two blocks
  keep stride 2).
* ``middle``: atrous rate {1, 2, 3, 4} of every middle-flow depthwise conv.
* ``exit``: atrous rates of the exit flow: ``r1r2`` (block 1 at rate 1, the last
  three separable convs at rate 2: DeepLabV3+ at output stride 16) or ``r2r4``
  (output stride 8).
* ``aspp``: ASPP rates ``aspp6`` (6, 12, 18) or ``aspp12`` (12, 24, 36).
* ``m1`` … ``m16``: ``keep``/``drop`` of each middle-flow block. Every combination is
  valid (a middle block maps 728 channels to 728 at the same size), so every decision
  is independent and FairNAS's strict fairness needs no coupling.

Seed: DeepLabV3+ as published at output stride 16 (entry stride 2, middle rate 1,
exit rates (1, 2), ASPP (6, 12, 18), every middle block kept).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from qanas.space.base import Decision, SearchSpace, SubnetConfig, register_space
from qanas.space.fmas_mbv2 import labelled_config
from qanas.space.layer_specs import conv_bn_act_specs, conv_out_hw
from targets.cost import LayerSpec

STEM = ((32, 2), (64, 1))  # (width, stride) of the two stem convs
ENTRY = ((128, 128, 128), (256, 256, 256), (728, 728, 728))
ENTRY_FIXED_STRIDES = (2, 2)  # of entry blocks 1 and 2; block 3's is the `entry` decision
MIDDLE_BLOCKS = 16
MIDDLE_WIDTH = 728
EXIT_BLOCK = (728, 1024, 1024)
EXIT_CONVS = (1536, 1536, 2048)
HEAD_CHANNELS, LOW_CHANNELS = 256, 48
LOW_AFTER_ENTRY = 0  # the decoder's low-level input: entry block 1's output (stride 4)
ENTRY_STRIDES = (1, 2, 3, 4)
MIDDLE_RATES = (1, 2, 3, 4)
EXIT_RATES = {"r1r2": (1, 2), "r2r4": (2, 4)}
ASPP_RATES = {"aspp6": (6, 12, 18), "aspp12": (12, 24, 36)}


@dataclass(frozen=True)
class XceptionPlan:
    """One subnet: entry block 3's stride, the atrous rates and the kept middle blocks (0-based)."""

    entry_stride: int
    middle_rate: int
    exit_rates: tuple[int, int]
    aspp_rates: tuple[int, ...]
    kept: tuple[int, ...]


def separable_specs(name: str, in_ch: int, out_ch: int, in_hw: tuple[int, int], stride: int = 1,
                    dilation: int = 1) -> list[LayerSpec]:
    """Layer specs of a `qanas.supernet.xception.SeparableConv` built with the same arguments."""
    specs = conv_bn_act_specs(f"{name}.dw", in_ch, in_ch, in_hw, 3, stride, dilation, in_ch, "relu")
    out_hw = conv_out_hw(in_hw, 3, stride, dilation)
    return specs + conv_bn_act_specs(f"{name}.pw", in_ch, out_ch, out_hw, 1, act="relu")


def block_specs(name: str, in_ch: int, widths: Sequence[int], in_hw: tuple[int, int], stride: int,
                dilation: int, shortcut: str) -> list[LayerSpec]:
    """Layer specs of an `XceptionBlock` (`shortcut`: "conv", "sum" or "none")."""
    specs, ch, hw = [], in_ch, in_hw
    for i, width in enumerate(widths):
        last = i == len(widths) - 1
        specs += separable_specs(f"{name}.convs.{i}", ch, width, hw, stride if last else 1, dilation)
        hw = conv_out_hw(hw, 3, stride if last else 1, dilation)
        ch = width
    if shortcut == "conv":
        specs += conv_bn_act_specs(f"{name}.shortcut", in_ch, ch, in_hw, 1, stride, act=None)
    if shortcut != "none":
        specs.append(LayerSpec("add", f"{name}.add", ch, ch, hw, hw))
    return specs


def deeplabv3plus_specs(name: str, high_ch: int, low_ch: int, high_hw: tuple[int, int],
                        low_hw: tuple[int, int], rates: Sequence[int], num_classes: int) -> list[LayerSpec]:
    """Layer specs of a `qanas.supernet.xception.DeepLabV3PlusHead` built with the same arguments."""
    mid = HEAD_CHANNELS
    specs = conv_bn_act_specs(f"{name}.aspp.0", high_ch, mid, high_hw, 1, act="relu")
    for i, rate in enumerate(rates, start=1):
        specs += separable_specs(f"{name}.aspp.{i}", high_ch, mid, high_hw, dilation=rate)
    specs.append(LayerSpec("global_pool", f"{name}.pool", high_ch, high_ch, high_hw, (1, 1)))
    specs += conv_bn_act_specs(f"{name}.pool.conv", high_ch, mid, (1, 1), 1, act="relu")
    specs.append(LayerSpec("resize", f"{name}.pool.resize", mid, mid, (1, 1), high_hw))
    cat = mid * (len(rates) + 2)
    specs.append(LayerSpec("concat", f"{name}.cat", cat, cat, high_hw, high_hw))
    specs += conv_bn_act_specs(f"{name}.project", cat, mid, high_hw, 1, act="relu")
    specs.append(LayerSpec("resize", f"{name}.resize", mid, mid, high_hw, low_hw))
    specs += conv_bn_act_specs(f"{name}.low", low_ch, LOW_CHANNELS, low_hw, 1, act="relu")
    fused = mid + LOW_CHANNELS
    specs.append(LayerSpec("concat", f"{name}.fuse_cat", fused, fused, low_hw, low_hw))
    specs += separable_specs(f"{name}.decoder.0", fused, mid, low_hw)
    specs += separable_specs(f"{name}.decoder.1", mid, mid, low_hw)
    specs += conv_bn_act_specs(f"{name}.classifier", mid, num_classes, low_hw, 1, act=None, bias=True)
    return specs


class FMASXceptionSpace(SearchSpace):
    """The `fmas-xception` space (see the module docstring).

    Args:
        num_classes: classes assumed by `layer_specs` when none are given (PASCAL VOC's 21).
    """

    name = "fmas-xception"

    def __init__(self, num_classes: int = 21):
        self.num_classes = num_classes
        self.decisions = (
            Decision("entry", tuple(f"s{s}" for s in ENTRY_STRIDES)),
            Decision("middle", tuple(f"r{r}" for r in MIDDLE_RATES)),
            Decision("exit", tuple(EXIT_RATES)),
            Decision("aspp", tuple(ASPP_RATES)),
        ) + tuple(Decision(f"m{i}", ("keep", "drop")) for i in range(1, MIDDLE_BLOCKS + 1))

    def _config(self, labels: dict[str, str]) -> SubnetConfig:
        return labelled_config(self, labels)

    def max_config(self) -> SubnetConfig:
        """Entry stride 1 (output stride 8), every middle block kept, the smallest rates."""
        return self._config({})

    def min_config(self) -> SubnetConfig:
        """Entry stride 4 (output stride 32), every middle block dropped, the smallest rates."""
        return self._config({"entry": "s4", **{f"m{i}": "drop" for i in range(1, MIDDLE_BLOCKS + 1)}})

    def seed_config(self) -> SubnetConfig:
        """DeepLabV3+ at output stride 16: entry stride 2, middle rate 1, exit (1, 2), ASPP (6, 12, 18)."""
        return self._config({"entry": "s2"})

    def plan(self, cfg: SubnetConfig) -> XceptionPlan:
        """The `XceptionPlan` of `cfg`."""
        self.validate(cfg)
        labels = cfg.labels()
        return XceptionPlan(
            entry_stride=int(labels[0][1:]), middle_rate=int(labels[1][1:]),
            exit_rates=EXIT_RATES[labels[2]], aspp_rates=ASPP_RATES[labels[3]],
            kept=tuple(i for i, label in enumerate(labels[4:]) if label == "keep"))

    def gate_units(self, cfg: SubnetConfig) -> dict:
        """Entry block 3 → its stride; each kept middle block → its rate; the exit flow and
        the head → their rates."""
        plan = self.plan(cfg)
        units: dict = {"entry.2": plan.entry_stride}
        units.update({f"middle.{i}": plan.middle_rate for i in plan.kept})
        units["exit_block"] = plan.exit_rates[0]
        units["exit_convs"] = plan.exit_rates[1]
        units["head"] = plan.aspp_rates
        return units

    def layer_specs(self, cfg: SubnetConfig, image_size: Sequence[int],
                    num_classes: int | None = None) -> list[LayerSpec]:
        """Analytic `LayerSpec`s of `extract(cfg)` for an (H, W) input."""
        plan = self.plan(cfg)
        classes = self.num_classes if num_classes is None else num_classes
        hw = out_hw = (int(image_size[0]), int(image_size[1]))
        specs: list[LayerSpec] = []
        ch = 3
        for i, (width, stride) in enumerate(STEM):
            specs += conv_bn_act_specs(f"stem.{i}", ch, width, hw, 3, stride, act="relu")
            hw, ch = conv_out_hw(hw, 3, stride, 1), width
        low_ch, low_hw = ch, hw
        for i, (widths, stride) in enumerate(zip(ENTRY, ENTRY_FIXED_STRIDES + (plan.entry_stride,),
                                                 strict=True)):
            specs += block_specs(f"entry.{i}", ch, widths, hw, stride, 1, "conv")
            hw, ch = conv_out_hw(hw, 3, stride, 1), widths[-1]
            if i == LOW_AFTER_ENTRY:
                low_ch, low_hw = ch, hw
        for i in plan.kept:
            specs += block_specs(f"middle.{i}", ch, (MIDDLE_WIDTH,) * 3, hw, 1, plan.middle_rate, "sum")
        specs += block_specs("exit_block", ch, EXIT_BLOCK, hw, 1, plan.exit_rates[0], "conv")
        specs += block_specs("exit_convs", EXIT_BLOCK[-1], EXIT_CONVS, hw, 1, plan.exit_rates[1], "none")
        specs += deeplabv3plus_specs("head", EXIT_CONVS[-1], low_ch, hw, low_hw, plan.aspp_rates, classes)
        specs.append(LayerSpec("resize", "resize", classes, classes, low_hw, out_hw))
        return specs


register_space(FMASXceptionSpace())
