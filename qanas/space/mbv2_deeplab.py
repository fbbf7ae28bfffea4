"""`mbv2-deeplab`: the NXP QA-NAS space, a searchable MobileNetV2 encoder for DeepLabV3.

Decisions (19), in order:

* ``l2`` … ``l17``: one per inverted-residual layer `features.2` … `features.17`
  of MobileNetV2 (layer numbers are torchvision's `features` indices; the stem
  is `features.0`, the fixed expansion-1 block `features.1`). Options are the
  kernel/expansion pairs ``k{3,5,7}e{3,4,6}``; layers after the first of their
  stage also offer ``skip`` (identity), so every stage keeps at least one layer.
  One decision per layer keeps FairNAS's strict fairness simple.
* ``d160``, ``d320``: dilation ``d1``/``d2`` of every layer of the 160- and
  320-channel stages.
* ``head``: ``aspp6`` (ASPP rates 6, 12, 18), ``aspp12`` (12, 24, 36) or
  ``lraspp`` (LR-ASPP over the stride-8 32-channel and the final features).

Stages (width × layers, first stride): 24×2 s2, 32×3 s2, 64×4 s2, 96×3 s1,
160×3 s1, 320×1 s1 — the 160 stage keeps stride 1 so the encoder has output
stride 16, as DeepLabV3 uses MobileNetV2. The final 1280-channel conv of the
classifier is not part of the encoder.

Seed network: plain MobileNetV2 (every layer ``k3e6``, nothing skipped) with the
DeepLabV3 output-stride-16 setting (``d2`` in both dilated stages, as
torchvision's `replace_stride_with_dilation`) and ASPP(6, 12, 18).
"""

from __future__ import annotations

from qanas.space.base import Decision, SubnetConfig, register_space
from qanas.space.mbv2_plan import MobileNetV2PlanSpace

# (width, layers, stride of the first layer, dilation decision or None)
STAGES: tuple[tuple[int, int, int, str | None], ...] = (
    (24, 2, 2, None),
    (32, 3, 2, None),
    (64, 4, 2, None),
    (96, 3, 1, None),
    (160, 3, 1, "d160"),
    (320, 1, 1, "d320"),
)
KERNELS = (3, 5, 7)
EXPANSIONS = (3, 4, 6)
BLOCK_OPTIONS = tuple(f"k{k}e{e}" for k in KERNELS for e in EXPANSIONS)
SKIP = "skip"
HEADS = {"aspp6": (6, 12, 18), "aspp12": (12, 24, 36), "lraspp": None}


def _layer_table() -> list[tuple[int, int, int, int, str | None, bool]]:
    """(features index, in width, out width, stride, dilation decision, first of stage) per layer."""
    rows, index, in_ch = [], 2, 16
    for width, layers, stride, dil in STAGES:
        for j in range(layers):
            rows.append((index, in_ch if j == 0 else width, width, stride if j == 0 else 1, dil, j == 0))
            index += 1
        in_ch = width
    return rows


class MBV2DeepLabSpace(MobileNetV2PlanSpace):
    """The `mbv2-deeplab` space (see the module docstring).

    Args:
        num_classes: classes assumed by `layer_specs` when none are given.
        aspp_channels, lraspp_channels: head widths.
    """

    name = "mbv2-deeplab"

    def __init__(self, num_classes: int = 19, aspp_channels: int = 256, lraspp_channels: int = 128):
        self.num_classes = num_classes
        self.aspp_channels = aspp_channels
        self.lraspp_channels = lraspp_channels
        self.layers = _layer_table()
        decisions = [
            Decision(f"l{idx}", BLOCK_OPTIONS if first else BLOCK_OPTIONS + (SKIP,))
            for idx, _, _, _, _, first in self.layers
        ]
        decisions += [Decision("d160", ("d1", "d2")), Decision("d320", ("d1", "d2")),
                      Decision("head", tuple(HEADS))]
        self.decisions = tuple(decisions)

    # -- landmarks ---------------------------------------------------------------------
    def _config(self, block: str, later: str, d160: str, d320: str, head: str) -> SubnetConfig:
        labels = [block if first else later for *_, first in self.layers] + [d160, d320, head]
        return SubnetConfig(self.name, tuple(d.options.index(lab) for d, lab in zip(self.decisions, labels,
                                                                                   strict=True)))

    def max_config(self) -> SubnetConfig:
        """Every layer k7e6, dilation 1, ASPP(6, 12, 18)."""
        return self._config("k7e6", "k7e6", "d1", "d1", "aspp6")

    def min_config(self) -> SubnetConfig:
        """One k3e3 layer per stage, dilation 1, LR-ASPP."""
        return self._config("k3e3", SKIP, "d1", "d1", "lraspp")

    def seed_config(self) -> SubnetConfig:
        """Plain MobileNetV2 (k3e6 everywhere) at output stride 16 (d2) with ASPP(6, 12, 18)."""
        return self._config("k3e6", "k3e6", "d2", "d2", "aspp6")

    # -- models and costs ------------------------------------------------------------------
    def layout(self):
        """The `MBV2Layout` of this space's supernet."""
        from qanas.space.mbv2_layout import BlockSlot, MBV2Layout

        slots = tuple(BlockSlot(in_ch, out_ch, max(KERNELS), max(EXPANSIONS))
                      for _, in_ch, out_ch, _, _, _ in self.layers)
        return MBV2Layout(slots, aspp_channels=self.aspp_channels, lraspp_channels=self.lraspp_channels,
                          low_after=6)

    def plan(self, cfg: SubnetConfig):
        """The `MBV2Plan` (kept blocks with settings, head) of `cfg`."""
        from qanas.space.mbv2_layout import ActiveBlock, MBV2Plan

        labels = cfg.labels()
        blocks = []
        for (idx, in_ch, _, stride, dil, _), label in zip(self.layers, labels, strict=False):
            if label == SKIP:
                continue
            kernel, expand = (int(part) for part in label[1:].split("e"))
            dilation = int(labels[self.index(dil)][1:]) if dil else 1
            blocks.append(ActiveBlock(idx, in_ch, kernel, expand, stride, dilation))
        head = labels[self.index("head")]
        rates = HEADS[head] or (6, 12, 18)
        return MBV2Plan(tuple(blocks), "lraspp" if head == "lraspp" else "aspp", rates)


register_space(MBV2DeepLabSpace())
