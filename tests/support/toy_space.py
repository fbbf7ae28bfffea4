"""A tiny search space + supernet for the `qanas.train` tests, and a tiny training config.

"toy-train" has decisions of different sizes (3, 4 and 2 options, so FairNAS
uses m = 4 paths), every convolution at stride 1 on 8 channels. Kernel choices
slice the centre of one shared 5x5 weight (Once-for-All style). "toy-train-repair"
adds a constraint: l2 and l3 may not both be "skip"; `repair` turns l3 into
"k3", which is how the tests see that samplers count decoded configs.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from qanas.space.base import SPACES, Decision, SearchSpace, SubnetConfig
from qanas.supernet import Supernet, register_supernet
from qanas.train import TrainConfig
from targets.cost import LayerSpec

TOY = "toy-train"
TOY_REPAIR = "toy-train-repair"
WIDTH = 8


class _ChoiceConv(nn.Module):
    """Residual conv whose kernel (1/3/5) slices a shared 5x5 weight, or an identity skip."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(WIDTH, WIDTH, 5, 5) * 0.1)
        self.bn = nn.BatchNorm2d(WIDTH)
        self.label = "k5"

    def forward(self, x):
        if self.label == "skip":
            return x
        k = int(self.label[1:])
        lo = (5 - k) // 2
        w = self.weight[:, :, lo:lo + k, lo:lo + k]
        return x + F.relu(self.bn(F.conv2d(x, w, padding=k // 2)))


class ToySupernet(Supernet):
    """stem conv → three choice layers → 1x1 classifier, all at full resolution."""

    def __init__(self, space: SearchSpace, num_classes: int):
        super().__init__(space, num_classes)
        self.stem = nn.Sequential(nn.Conv2d(3, WIDTH, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(WIDTH), nn.ReLU())
        self.layers = nn.ModuleList(_ChoiceConv() for _ in space.decisions)
        self.head = nn.Conv2d(WIDTH, num_classes, 1)
        self.set_active(space.max_config())

    def _apply_active(self, cfg: SubnetConfig) -> None:
        for layer, label in zip(self.layers, cfg.labels(), strict=True):
            layer.label = label

    def forward(self, x):
        x = self.stem(x)
        for layer in self.layers:
            x = layer(x)
        return self.head(x)

    def extract(self, cfg: SubnetConfig) -> nn.Module:
        sub = copy.deepcopy(self)
        sub.set_active(cfg)
        return sub


class ToySpace(SearchSpace):
    """Three decisions with 3, 4 and 2 options."""

    def __init__(self, name: str = TOY):
        self.name = name
        self.decisions = (
            Decision("l1", ("k1", "k3", "k5")),
            Decision("l2", ("k1", "k3", "k5", "skip")),
            Decision("l3", ("k3", "skip")),
        )

    def max_config(self) -> SubnetConfig:
        return SubnetConfig(self.name, (2, 2, 0))

    def min_config(self) -> SubnetConfig:
        return SubnetConfig(self.name, (0, 3, 0) if self.name == TOY_REPAIR else (0, 3, 1))

    def seed_config(self) -> SubnetConfig:
        return SubnetConfig(self.name, (1, 1, 0))

    def layer_specs(self, cfg: SubnetConfig, image_size: tuple[int, int]) -> list[LayerSpec]:
        hw = tuple(image_size)
        specs = [LayerSpec("conv", "stem", 3, WIDTH, hw, hw, kernel=(3, 3))]
        for decision, label in zip(self.decisions, cfg.labels(), strict=True):
            if label != "skip":
                k = int(label[1:])
                specs.append(LayerSpec("conv", decision.name, WIDTH, WIDTH, hw, hw, kernel=(k, k)))
        specs.append(LayerSpec("conv", "head", WIDTH, 6, hw, hw, bias=True))
        return specs


class ToyRepairSpace(ToySpace):
    """ToySpace where l2 and l3 may not both skip (repair sets l3 to k3)."""

    def __init__(self):
        super().__init__(TOY_REPAIR)

    def is_valid(self, cfg: SubnetConfig) -> bool:
        return super().is_valid(cfg) and not (cfg.choices[1] == 3 and cfg.choices[2] == 1)

    def repair(self, choices: Sequence[int]) -> tuple[int, ...]:
        c = [int(v) for v in choices]
        if c[1] == 3 and c[2] == 1:
            c[2] = 0
        return tuple(c)


def register_toy_spaces() -> None:
    """Registers "toy-train", "toy-train-repair" and their supernet once per process."""
    import qanas.space  # noqa: F401 - built-in spaces first, so the registry is complete

    if TOY not in SPACES:
        SPACES.register(TOY, ToySpace())
        register_supernet(ToySpace)(ToySupernet)
    if TOY_REPAIR not in SPACES:
        SPACES.register(TOY_REPAIR, ToyRepairSpace())


def tiny_config(**changes) -> TrainConfig:
    base = dict(space=TOY, image_size=(16, 32), epochs=4, batch_size=4, steps_per_epoch=2,
                train_length=12, val_length=4, val_batches=1, calib_batches=1, seed=1)
    base.update(changes)
    return TrainConfig(**base)
