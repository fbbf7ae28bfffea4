"""Supernet and static subnets of the SqueezeNAS spaces.

The supernet is a `SqueezeNASNet` whose blocks are `ChoiceBlock`s (13
candidate modules each, no weights shared between candidates, as in SqueezeNAS
and FairNAS); the stem, head and decoder are shared by every subnet.
`extract(cfg)` builds the same `SqueezeNASNet` with deep copies of the chosen
candidates, so its output equals the supernet path's output; `extract_shared(cfg)`
builds it from the supernet's own modules, for readers (the in-memory QDQ export).
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from qanas.space.base import SubnetConfig
from qanas.space.squeezenas import OPTIONS, SqueezeNASSpace
from qanas.supernet.base import Supernet
from qanas.supernet.blocks import ConvBNAct, LRASPPHead
from qanas.supernet.registry import register_supernet
from qanas.supernet.squeezenas_blocks import (
    ChoiceBlock,
    SqueezeNASASPPHead,
    WindowedLRASPPHead,
)


class SqueezeNASNet(nn.Module):
    """stem -> low blocks -> high blocks -> (head conv) -> decoder(low, high) -> upsample.

    Static when its blocks are static; the supernet uses the same class with
    `ChoiceBlock`s. Output: logits (N, classes, H, W) at the input resolution.
    """

    def __init__(self, stem: nn.Module, low_blocks: nn.Sequential, high_blocks: nn.Sequential,
                 head: nn.Module, decoder: nn.Module, align_corners: bool = False):
        super().__init__()
        self.align_corners = align_corners
        self.stem = stem
        self.low_blocks = low_blocks
        self.high_blocks = high_blocks
        self.head = head
        self.decoder = decoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits at the input resolution (bilinear, `align_corners`)."""
        low = self.low_blocks(self.stem(x))
        high = self.head(self.high_blocks(low))
        logits = self.decoder(low, high)
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear",
                             align_corners=self.align_corners)


@register_supernet(SqueezeNASSpace)
class SqueezeNASSupernet(Supernet):
    """Weight-sharing supernet of a `SqueezeNASSpace`; starts with `max_config` active.

    Example:
        >>> space = get_space("squeezenas-small")  # doctest: +SKIP
        >>> net = build_supernet(space, num_classes=19)  # doctest: +SKIP
        >>> net.set_active(space.seed_config()); logits = net(images)  # doctest: +SKIP
        >>> subnet = net.extract(space.seed_config())  # static nn.Module  # doctest: +SKIP
    """

    def __init__(self, space: SqueezeNASSpace, num_classes: int):
        super().__init__(space, num_classes)
        arch = space.arch
        act = arch.activation
        blocks = [ChoiceBlock(OPTIONS, p.in_channels, p.out_channels, p.stride, act)
                  for p in space.plans]
        split = space.low_level_index + 1
        high_ch = space.plans[-1].out_channels
        low_ch = space.plans[space.low_level_index].out_channels
        if arch.head_channels is not None:
            head = ConvBNAct(high_ch, arch.head_channels, 1, act=act)
            high_ch = arch.head_channels
        else:
            head = nn.Identity()
        if arch.decoder != "lraspp":
            decoder = SqueezeNASASPPHead(high_ch, low_ch, num_classes, arch.aspp_rates,
                                         arch.aspp_channels, arch.align_corners)
        elif arch.lraspp_pool is None:
            decoder = LRASPPHead(high_ch, low_ch, arch.lraspp_mid, num_classes)
        else:
            window, stride_h, stride_w = arch.lraspp_pool
            decoder = WindowedLRASPPHead(high_ch, low_ch, arch.lraspp_mid, num_classes, window,
                                         (stride_h, stride_w), arch.lraspp_scale_bias)
        self.net = SqueezeNASNet(
            ConvBNAct(3, arch.stem_channels, 3, stride=2, act=act),
            nn.Sequential(*blocks[:split]),
            nn.Sequential(*blocks[split:]),
            head,
            decoder,
            arch.align_corners,
        )
        self.set_active(space.max_config())

    def gate_modules(self) -> dict[str, nn.Module]:
        """``blocks.<i>`` → superblock i."""
        return {f"blocks.{i}": b for i, b in enumerate(self.choice_blocks)}

    @property
    def choice_blocks(self) -> list[ChoiceBlock]:
        """The superblocks in network order."""
        return [*self.net.low_blocks, *self.net.high_blocks]

    def _apply_active(self, cfg: SubnetConfig) -> None:
        for block, choice in zip(self.choice_blocks, cfg.choices, strict=True):
            block.active = choice

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, num_classes, H, W) of the active subnet."""
        return self.net(x)

    def extract(self, cfg: SubnetConfig) -> SqueezeNASNet:
        """A static `SqueezeNASNet` for `cfg` with deep-copied weights (and train/eval mode)."""
        return self._subnet(cfg, copy.deepcopy).train(self.training)

    def extract_shared(self, cfg: SubnetConfig) -> SqueezeNASNet:
        """The `SqueezeNASNet` of `cfg` made of the supernet's own modules (read it only)."""
        return self._subnet(cfg, lambda module: module)

    def _subnet(self, cfg: SubnetConfig, take) -> SqueezeNASNet:
        """`cfg`'s network from `take(module)` of the stem, chosen candidates, head and decoder."""
        self.space.validate(cfg)
        chosen = [take(b.candidates[c]) for b, c in zip(self.choice_blocks, cfg.choices,
                                                        strict=True)]
        split = len(self.net.low_blocks)
        return SqueezeNASNet(
            take(self.net.stem),
            nn.Sequential(*chosen[:split]),
            nn.Sequential(*chosen[split:]),
            take(self.net.head),
            take(self.net.decoder),
            self.net.align_corners,
        )
