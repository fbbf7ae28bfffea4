"""Weight-sharing supernet of `efficient-topformer` (elastic CNN stages + elastic attention).

The supernet is a `TopFormerNet` whose slots hold elastic modules
(`qanas.supernet.topformer_ops`) sized for the space's max subnet: stages of
`ElasticMBConv` of which the first `depth` run, a transformer of 4 groups × 2 block
slots (group g runs its first `depth` slots, all with the group's heads, key dim,
attention and MLP ratio), and injections with elastic input widths. The token
channels of a subnet are, in the max layout, the first `w` channels of each token
stage's segment; `token_index` lists them and every transformer projection is
sliced with it. `extract(cfg)` returns the static `TopFormerNet` of
`topformer_blocks.build_topformer`'s shape with the weights copied out.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from qanas.space.base import SubnetConfig
from qanas.space.efficient_topformer import (
    HEADS,
    INJECT_CHANNELS,
    INJECT_STAGES,
    KEY_DIMS,
    RATIOS,
    STAGES,
    STEM_WIDTHS,
    TOKEN_STAGES,
    TOKEN_STRIDE,
    VIT_DEPTHS,
    VIT_GROUPS,
    EfficientTopFormerSpace,
    TopFormerPlan,
    scaled,
)
from qanas.supernet.base import Supernet
from qanas.supernet.blocks import ConvBNAct
from qanas.supernet.dynamic_ops import DynamicBatchNorm2d, DynamicConv2d
from qanas.supernet.registry import register_supernet
from qanas.supernet.topformer_blocks import SegHead, TopFormerNet, TransformerBlock
from qanas.supernet.topformer_ops import (
    ElasticAttention,
    ElasticInjection,
    ElasticMBConv,
    ElasticMlp,
    ElasticStage,
    copy_conv_bn,
)

MAX_TOKEN_WIDTHS = tuple(max(STAGES[i].widths) for i in TOKEN_STAGES)
MAX_DIM = sum(MAX_TOKEN_WIDTHS)
MAX_VALUE_DIM = scaled(max(RATIOS), max(KEY_DIMS))
MAX_HIDDEN = scaled(max(RATIOS), MAX_DIM)


def token_index(widths: tuple[int, ...]) -> torch.Tensor:
    """Max-layout positions of the token channels of stages with these `widths` (in order)."""
    parts, start = [], 0
    for width, max_width in zip(widths, MAX_TOKEN_WIDTHS, strict=True):
        parts.append(torch.arange(start, start + width))
        start += max_width
    return torch.cat(parts)


class ElasticStem(nn.Sequential):
    """3×3 stride-2 conv-BN-ReLU6 with an elastic output width."""

    def __init__(self):
        super().__init__(DynamicConv2d(3, max(STEM_WIDTHS), 3), DynamicBatchNorm2d(max(STEM_WIDTHS)),
                         nn.ReLU6())
        self.width = max(STEM_WIDTHS)

    def configure(self, width: int) -> None:
        """Sets the output width."""
        self.width = width
        self[0].configure(width, 3, stride=2)

    def to_static(self) -> ConvBNAct:
        """`ConvBNAct` of the active width with copied weights."""
        module = ConvBNAct(3, self.width, 3, stride=2)
        copy_conv_bn(module[0], module[1], self[0].active_weight(3), self[1])
        return module.train(self.training)


class ElasticTransformer(nn.Module):
    """`VIT_GROUPS` groups of `max(VIT_DEPTHS)` block slots; `active` lists the slots that run."""

    def __init__(self):
        super().__init__()
        self.slots = nn.ModuleList(
            TransformerBlock(ElasticAttention(MAX_DIM, max(HEADS), max(KEY_DIMS), MAX_VALUE_DIM),
                             ElasticMlp(MAX_DIM, MAX_HIDDEN))
            for _ in range(VIT_GROUPS * max(VIT_DEPTHS)))
        self.active: tuple[int, ...] = tuple(range(len(self.slots)))

    def configure(self, plan: TopFormerPlan, dim_index: torch.Tensor) -> None:
        """Activates the blocks of `plan` on the token channels `dim_index`."""
        active, blocks = [], iter(plan.vit)
        for group, depth in plan.vit_groups:
            for j in range(depth):
                slot = group * max(VIT_DEPTHS) + j
                block = next(blocks)
                self.slots[slot].attn.configure(dim_index, block.heads, block.key_dim, block.value_dim)
                self.slots[slot].mlp.configure(dim_index, block.mlp_hidden)
                active.append(slot)
        self.active = tuple(active)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The active blocks in order."""
        for slot in self.active:
            x = self.slots[slot](x)
        return x

    def to_static(self) -> nn.Sequential:
        """The active blocks as static `TransformerBlock`s."""
        return nn.Sequential(*(
            TransformerBlock(self.slots[s].attn.to_static(), self.slots[s].mlp.to_static())
            for s in self.active))


@register_supernet(EfficientTopFormerSpace)
class EfficientTopFormerSupernet(Supernet):
    """Weight-sharing supernet of `EfficientTopFormerSpace`; starts with `max_config` active.

    Example:
        >>> space = get_space("efficient-topformer")  # doctest: +SKIP
        >>> net = build_supernet(space, num_classes=19)  # doctest: +SKIP
        >>> net.set_active(space.seed_config()); logits = net(images)  # doctest: +SKIP
        >>> subnet = net.extract(space.seed_config())  # static TopFormerNet  # doctest: +SKIP
    """

    def __init__(self, space: EfficientTopFormerSpace, num_classes: int):
        super().__init__(space, num_classes)
        stages, in_ch = [], max(STEM_WIDTHS)
        for slot in STAGES:
            out = max(slot.widths)
            blocks = [ElasticMBConv(in_ch if b == 0 else out, out, max(slot.kernels),
                                    max(slot.expansions)) for b in range(slot.max_depth)]
            stages.append(ElasticStage(blocks))
            in_ch = out
        injections = nn.ModuleList(ElasticInjection(max(STAGES[i].widths), INJECT_CHANNELS)
                                   for i in INJECT_STAGES)
        self.net = TopFormerNet(ElasticStem(), nn.ModuleList(stages), ElasticTransformer(), injections,
                                SegHead(INJECT_CHANNELS, num_classes), ((0, 0),) * len(INJECT_STAGES))
        self._plan: TopFormerPlan | None = None
        self.set_active(space.max_config())

    def gate_modules(self) -> dict[str, nn.Module]:
        """The modules of `EfficientTopFormerSpace.gate_units`' units (every slot, run or not)."""
        net = self.net
        units: dict[str, nn.Module] = {"stem": net.stem}
        for s, stage in enumerate(net.stages):
            units.update({f"stages.{s}.blocks.{b}": block for b, block in enumerate(stage.blocks)})
        units.update({f"transformer.slots.{i}": slot for i, slot in enumerate(net.transformer.slots)})
        units.update({f"injections.{n}": inj for n, inj in enumerate(net.injections)})
        return units

    def _apply_active(self, cfg: SubnetConfig) -> None:
        plan = self.space.plan(cfg)
        self.net.stem.configure(plan.stem)
        for stage, blocks in zip(self.net.stages, plan.stages, strict=True):
            stage.depth = len(blocks)
            for module, b in zip(stage.blocks, blocks, strict=False):
                module.configure(b.in_ch, b.out_ch, b.kernel, b.expand, b.stride)
        self.net.transformer.configure(plan, token_index(plan.token_widths))
        self.net.token_slices = plan.token_slices()
        self._plan = plan

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, num_classes, H, W) of the active subnet (H, W multiples of 64)."""
        if x.shape[-2] % TOKEN_STRIDE or x.shape[-1] % TOKEN_STRIDE:
            raise ValueError(f"efficient-topformer needs input sides that are multiples of "
                             f"{TOKEN_STRIDE}, got {tuple(x.shape[-2:])}")
        return self.net(x)

    def extract(self, cfg: SubnetConfig) -> TopFormerNet:
        """A static `TopFormerNet` for `cfg` with copied weights; the active path is restored."""
        self.space.validate(cfg)
        previous = self.active
        self.set_active(cfg)
        try:
            plan, net = self._plan, self.net
            subnet = TopFormerNet(
                net.stem.to_static(),
                nn.ModuleList(stage.to_static() for stage in net.stages),
                net.transformer.to_static(),
                nn.ModuleList(inj.to_static(plan.widths[i])
                              for inj, i in zip(net.injections, INJECT_STAGES, strict=True)),
                copy.deepcopy(net.head),
                plan.token_slices(),
            )
        finally:
            self.set_active(previous)
        return subnet.train(self.training)


__all__ = ["EfficientTopFormerSupernet", "token_index"]
