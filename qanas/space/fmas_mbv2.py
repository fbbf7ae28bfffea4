"""`fmas-mbv2`: the FMAS space (Xiong et al., 2023), MobileNetV2 hyperparameters of a DeepLabV3+ network.

Layer numbering: MobileNetV2's 17 inverted-residual layers are numbered 1–17
by their torchvision `features` index (the stem conv is `features.0`, counted
separately; layer 1 is the fixed expansion-1 16-channel block). All layers are
k3e6 as in MobileNetV2. The head is fixed: the light DeepLabV3+ head
(`qanas.supernet.blocks.LiteDeepLabV3PlusHead`: ASPP of a 1x1 and the image-pooling
branch, 256 wide, no atrous branches, as DeepLab's MobileNetV2 models; the
DeepLabV3+ decoder with a 48-channel 1x1 of the 24-channel group's output and one
depthwise-separable 3x3). FMAS subsamples DeepLabV3+; its reported costs (seed
9.73 GMACs / 2.14 M parameters at 513×513, 21 classes) fit this head on
MobileNetV2 at output stride 8 (`tests/qanas/space/test_space_fmas.py` checks them).

Decisions (25), in order:

* ``s2``, ``s4``: stride {2, 3} of the first layer of the 24- and 32-channel
  groups (layers 2 and 4). FMAS's text says "2nd and 3rd layer"; layer 3 is a
  stride-1 layer whose {2, 3} choice would exclude MobileNetV2 itself, so we
  read it as the 2nd and 3rd downsampling layers (the stem is the 1st).
* ``s7``, ``s14``: stride {1, 2} of layers 7 and 14 (first of the 64 and the
  160 group), MobileNetV2's 4th and 5th downsampling layers. The paper's seed
  strides (2, 2, 1, 1) are (s2, s4, s7, s14): output stride 8, which its costs
  need. (An earlier version of this space searched layer 17's stride instead of
  layer 7's, so output stride 8 was out of reach.)
* ``d12`` … ``d14``: dilation {1, 2}; ``d15`` … ``d17``: dilation {1, 2, 3, 4}.
* ``k2`` … ``k16``: ``keep``/``drop`` for every layer of the 24/32/64/96/160
  groups; at least one layer per group is kept. `repair` keeps the first (for vectors
  from pymoo's operators); FairNAS training draws each group's keep/drop picks
  jointly (`coupled_decisions`), so every layer is kept in exactly half the paths.

When a group's first layer is dropped, its first kept layer takes over the
group's transition: the previous group's width as input and the group's stride
(s2/s4/s14 or MobileNetV2's fixed stride); the supernet slices that layer's
input channels (every group is wider than the one before it). Sizes never
reach zero (padded 3×3 convs give ceil(H / stride)), so every combination
satisfying the keep rule is valid for any input of at least 1×1.

Seed: the paper's seed, MobileNetV2 at output stride 8: strides (s2, s4, s7,
s14) = (2, 2, 1, 1), dilations (d12 … d17) = (2, 2, 2, 4, 4, 4), all layers kept.
Plain MobileNetV2 at output stride 32 (s7 = s14 = 2, all dilations 1) is in the
space as well.

Checkpoints of the earlier space (s17, the DeepLabV3 ASPP head) do not fit this
supernet's weights: loading one is refused with `CheckpointError` ("the space
definition changed since training; retrain with `qanas train-supernet`").
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from qanas.space.base import Decision, SearchSpace, SubnetConfig, register_space
from qanas.space.mbv2_plan import MobileNetV2PlanSpace

# (width, features indices, stride decision or fixed stride)
GROUPS: tuple[tuple[int, tuple[int, ...], str | int], ...] = (
    (24, (2, 3), "s2"),
    (32, (4, 5, 6), "s4"),
    (64, (7, 8, 9, 10), "s7"),
    (96, (11, 12, 13), 1),
    (160, (14, 15, 16), "s14"),
)
LAST = (320, 17, 1)
DILATIONS = {12: (1, 2), 13: (1, 2), 14: (1, 2), 15: (1, 2, 3, 4), 16: (1, 2, 3, 4), 17: (1, 2, 3, 4)}
KERNEL, EXPAND = 3, 6


def labelled_config(space: SearchSpace, labels: dict[str, str]) -> SubnetConfig:
    """The subnet of `space` with the option `labels` (decision name → label) and every other
    decision at its first option."""
    return SubnetConfig(space.name, tuple(d.options.index(labels.get(d.name, d.options[0]))
                                          for d in space.decisions))


class FMASMobileNetV2Space(MobileNetV2PlanSpace):
    """The `fmas-mbv2` space (see the module docstring).

    Args:
        num_classes: classes assumed by `layer_specs` when none are given.
        head_channels: width of the light DeepLabV3+ head.
        low_channels: width of the head's low-level 1x1 conv.
    """

    name = "fmas-mbv2"

    def __init__(self, num_classes: int = 19, head_channels: int = 256, low_channels: int = 48):
        self.num_classes = num_classes
        self.head_channels = head_channels
        self.low_channels = low_channels
        decisions = [Decision("s2", ("s2", "s3")), Decision("s4", ("s2", "s3")),
                     Decision("s7", ("s1", "s2")), Decision("s14", ("s1", "s2"))]
        decisions += [Decision(f"d{i}", tuple(f"d{d}" for d in opts)) for i, opts in DILATIONS.items()]
        decisions += [Decision(f"k{i}", ("keep", "drop")) for _, idxs, _ in GROUPS for i in idxs]
        self.decisions = tuple(decisions)

    # -- validity ---------------------------------------------------------------------
    def _group_kept(self, choices: Sequence[int]) -> list[list[int]]:
        """Kept features indices per group (0 = keep)."""
        return [[i for i in idxs if choices[self.index(f"k{i}")] == 0] for _, idxs, _ in GROUPS]

    def is_valid(self, cfg: SubnetConfig) -> bool:
        """In bounds and at least one kept layer per group."""
        return super().is_valid(cfg) and all(self._group_kept(cfg.choices))

    def repair(self, choices: Sequence[int]) -> tuple[int, ...]:
        """Keeps the first layer of any group whose layers are all dropped."""
        fixed = [int(c) for c in choices]
        for (_, idxs, _), kept in zip(GROUPS, self._group_kept(fixed), strict=True):
            if not kept:
                fixed[self.index(f"k{idxs[0]}")] = 0
        return tuple(fixed)

    def coupled_decisions(self) -> tuple[tuple[int, ...], ...]:
        """The keep/drop decisions of each group: one layer per group must stay."""
        return tuple(tuple(self.index(f"k{i}") for i in idxs) for _, idxs, _ in GROUPS)

    def group_is_valid(self, group: tuple[int, ...], picks: Sequence[int]) -> bool:
        """A group's keep/drop picks are valid when they keep at least one layer."""
        return any(int(p) == 0 for p in picks)

    @property
    def cardinality(self) -> int:
        """Exact count: free decisions times (2**n - 1) keep patterns per group of n layers."""
        free = int(np.prod([d.size for d in self.decisions if not d.name.startswith("k")], dtype=object))
        for _, idxs, _ in GROUPS:
            free *= 2 ** len(idxs) - 1
        return free

    # -- landmarks ----------------------------------------------------------------------
    def _config(self, labels: dict[str, str]) -> SubnetConfig:
        return labelled_config(self, labels)

    def max_config(self) -> SubnetConfig:
        """Every layer kept, smallest strides (2, 2, 1, 1), dilation 1 (output stride 8)."""
        return self._config({})

    def min_config(self) -> SubnetConfig:
        """Only the first layer of each group kept, largest strides (3, 3, 2, 2), dilation 1."""
        labels = {"s2": "s3", "s4": "s3", "s7": "s2", "s14": "s2"}
        labels.update({f"k{i}": "drop" for _, idxs, _ in GROUPS for i in idxs[1:]})
        return self._config(labels)

    def seed_config(self) -> SubnetConfig:
        """The paper's seed: strides (2, 2, 1, 1), dilations (2, 2, 2, 4, 4, 4), every layer kept."""
        return self._config({"d12": "d2", "d13": "d2", "d14": "d2", "d15": "d4", "d16": "d4", "d17": "d4"})

    # -- models and costs ------------------------------------------------------------------
    def layout(self):
        """The `MBV2Layout` of this space's supernet (k3e6 blocks, light DeepLabV3+ head over
        the 24-channel group's output)."""
        from qanas.space.mbv2_layout import BlockSlot, MBV2Layout

        slots, in_ch = [], 16
        for width, idxs, _ in GROUPS:
            slots += [BlockSlot(in_ch if j == 0 else width, width, KERNEL, EXPAND) for j in range(len(idxs))]
            in_ch = width
        slots.append(BlockSlot(in_ch, LAST[0], KERNEL, EXPAND))
        return MBV2Layout(tuple(slots), aspp_channels=None, lraspp_channels=None, low_after=GROUPS[0][1][-1],
                          lite_plus_channels=(self.head_channels, self.low_channels))

    def plan(self, cfg: SubnetConfig):
        """The `MBV2Plan` of `cfg` (kept blocks with their settings, light DeepLabV3+ head)."""
        from qanas.space.mbv2_layout import ActiveBlock, MBV2Plan

        def value(name: str) -> int:
            return int(cfg.label(name)[1:])

        blocks, in_ch = [], 16
        for (width, _, stride), kept in zip(GROUPS, self._group_kept(cfg.choices), strict=True):
            for j, idx in enumerate(kept):
                first_stride = value(stride) if isinstance(stride, str) else stride
                dilation = value(f"d{idx}") if idx in DILATIONS else 1
                blocks.append(ActiveBlock(idx, in_ch if j == 0 else width, KERNEL, EXPAND,
                                          first_stride if j == 0 else 1, dilation))
            in_ch = width
        blocks.append(ActiveBlock(LAST[1], in_ch, KERNEL, EXPAND, LAST[2], value(f"d{LAST[1]}")))
        return MBV2Plan(tuple(blocks), "lite_plus", ())


register_space(FMASMobileNetV2Space())
