"""A tiny registered search space for the NPU tests: two block choices and an upsampling one.

"npu-toy": stem conv → ``b1``, ``b2`` (conv kernel 1 or 3, same option list: one group
for the pruning's group test) → ``up``: a strided conv that downsamples by 2 or 4, then
a bilinear resize back (``align_corners=False``, i.e. half-pixel centres, as the
decoders of our spaces do) → 1x1 classifier. Vela maps a half-pixel bilinear resize
only at scale 2, so ``up=x4`` leaves a RESIZE_BILINEAR on the CPU: the pruning must find
that from Vela's output, and keep everything else.
"""

from __future__ import annotations

import copy

import torch.nn.functional as F
from torch import nn

from qanas.space.base import SPACES, Decision, SearchSpace, SubnetConfig
from qanas.supernet import Supernet, register_supernet
from targets.cost import LayerSpec

NAME = "npu-toy"
WIDTH = 8


class _Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.convs = nn.ModuleDict({"k1": nn.Conv2d(WIDTH, WIDTH, 1),
                                    "k3": nn.Conv2d(WIDTH, WIDTH, 3, padding=1)})
        self.label = "k3"

    def forward(self, x):
        return F.relu(self.convs[self.label](x))


class _Up(nn.Module):
    def __init__(self):
        super().__init__()
        self.down = nn.ModuleDict({f"x{f}": nn.Conv2d(WIDTH, WIDTH, f, stride=f)
                                   for f in (2, 4)})
        self.label = "x2"

    def forward(self, x):
        y = F.relu(self.down[self.label](x))
        return F.interpolate(y, size=x.shape[-2:], mode="bilinear", align_corners=False)


class NpuToySupernet(Supernet):
    """stem → b1 → b2 → down/up → head."""

    def __init__(self, space: SearchSpace, num_classes: int):
        super().__init__(space, num_classes)
        self.stem = nn.Sequential(nn.Conv2d(3, WIDTH, 3, padding=1), nn.ReLU())
        self.b1, self.b2, self.up = _Block(), _Block(), _Up()
        self.head = nn.Conv2d(WIDTH, num_classes, 1)
        self.set_active(space.max_config())

    def _apply_active(self, cfg: SubnetConfig) -> None:
        self.b1.label, self.b2.label, self.up.label = cfg.labels()

    def forward(self, x):
        return self.head(self.up(self.b2(self.b1(self.stem(x)))))

    def extract(self, cfg: SubnetConfig) -> nn.Module:
        sub = copy.deepcopy(self)
        sub.set_active(cfg)
        return sub


class NpuToySpace(SearchSpace):
    """Decisions b1, b2 (k1, k3) and up (x2, x4)."""

    name = NAME
    decisions = (Decision("b1", ("k1", "k3")), Decision("b2", ("k1", "k3")),
                 Decision("up", ("x2", "x4")))
    num_classes = 4

    def max_config(self) -> SubnetConfig:
        return SubnetConfig(NAME, (1, 1, 0))

    def min_config(self) -> SubnetConfig:
        return SubnetConfig(NAME, (0, 0, 1))

    def seed_config(self) -> SubnetConfig:
        return SubnetConfig(NAME, (1, 1, 0))

    def layer_specs(self, cfg: SubnetConfig, image_size, num_classes=None) -> list[LayerSpec]:
        hw = tuple(image_size)
        k1, k2, up = cfg.labels()
        f = int(up[1:])
        low = (hw[0] // f, hw[1] // f)
        return [LayerSpec("conv", "stem", 3, WIDTH, hw, hw, kernel=(3, 3), bias=True),
                *(LayerSpec("conv", n, WIDTH, WIDTH, hw, hw, kernel=(int(k[1]),) * 2, bias=True)
                  for n, k in (("b1", k1), ("b2", k2))),
                LayerSpec("conv", "down", WIDTH, WIDTH, hw, low, kernel=(f, f), stride=(f, f),
                          bias=True),
                LayerSpec("conv", "head", WIDTH, num_classes or 4, hw, hw, bias=True)]


def register_npu_toy() -> None:
    """Registers "npu-toy" and its supernet once per process."""
    import qanas.space  # noqa: F401 - built-in spaces first

    if NAME not in SPACES:
        SPACES.register(NAME, NpuToySpace())
        register_supernet(NpuToySpace)(NpuToySupernet)
