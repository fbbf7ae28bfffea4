"""`efficient-topformer`: a CNN + vision-transformer hybrid (TopFormer) with an elastic space.

TopFormer (Zhang et al., CVPR 2022) builds a *token pyramid* with MobileNetV2 blocks,
average-pools the outputs of the last four stages to 1/64 of the input, concatenates
them into tokens, runs a few attention blocks on those tokens, and *injects* the
resulting global semantics back into the 1/8, 1/16 and 1/32 features through a
sigmoid gate before a light segmentation head. Efficient-TopFormer searches that
network; the space here is the one its study gives (tuples are (lowest, highest, step)):

=========  =============  =============  ======  ==============
block      width          depth          kernel  expansion
=========  =============  =============  ======  ==============
stem       {16, 24}       1              3       -
MBConv-1   {16, 24}       {1, 2}         {3, 5}  1
MBConv-2   (16, 40, 8)    {1, 2, 3}      {3, 5}  {3, 4, 5}
MBConv-3   (24, 72, 8)    {1, 2, 3}      {3, 5}  {2, 3, 4, 5}
MBConv-4   (56, 136, 8)   {1, 2, 3}      {3, 5}  {2, 3, 4, 5}
MBConv-5   (88, 176, 8)   {1, 2, 3, 4}   {3, 5}  {4, 5, 6, 7}
=========  =============  =============  ======  ==============

and for each of the four ViT block groups: heads (2, 12, 2), key dim (12, 20, 2),
attention ratio (1.6, 2.4, 0.2), MLP ratio (1.6, 2.4, 0.2), depth {1, 2}. Query dim =
key dim; value dim per head = int(attention ratio × key dim); MLP hidden width =
int(MLP ratio × token width). A group of depth 2 repeats its block (same settings).

Decisions (59), in order: ``stem``; per stage ``s<i>.width``, ``s<i>.depth``, then
per block ``s<i>.b<j>.kernel`` (and ``s<i>.b<j>.expand`` from stage 2 on); per ViT
group ``vit<g>.heads``, ``.keydim``, ``.attn``, ``.mlp``, ``.depth``. Width and
expansion are per stage and per block as in Once-for-All; the kernel and expansion
of blocks beyond a stage's depth do not change the network (`canonical` sets them to
their first option, and `is_active` tells which decisions matter).

Structure (strides are of the input): stem 3×3 s2 → MBConv-1 (s1, 1/2) → MBConv-2
(1/4) → MBConv-3 (1/8) → MBConv-4 (1/16) → MBConv-5 (1/32); the outputs of stages
2–5 are average-pooled to 1/64 and concatenated (token width = sum of their widths);
the ViT blocks run on those tokens; the tokens are split back into the channels of
stages 3, 4 and 5 and each is injected into its stage's output (128 channels): local
1×1 conv-BN × resize(h-sigmoid(1×1 conv-BN(global))) + resize(1×1 conv-BN(global));
the head resizes the three to 1/8, adds them, 1×1 conv-BN-ReLU6, 1×1 classifier,
resize to the input.

Departures from TopFormer, for int8 and for the compiler:

* ReLU6 everywhere (TopFormer's token pyramid uses ReLU): one clamp range per tensor.
* The MLP's 3×3 depthwise conv is conv-BN-ReLU6 (TopFormer: conv with bias, no BN):
  the BN folds, so the int8 graph is the same, and every conv of the supernet slices
  the same way.
* Tokens are pooled with fixed ``AvgPool2d`` windows (16, 8, 4, 2 for stages 2–5)
  instead of ``adaptive_avg_pool2d``: the same values for inputs whose sides are
  multiples of 64, which this space therefore requires (a clear error otherwise).
* Attention scores are not multiplied by key_dim^-0.5 (TopFormer defines the scale
  but does not apply it); the BN after the query projection learns any scale.
* The injection width is 128 (TopFormer-T's) for every subnet; the head has no
  dropout.

Landmarks: `seed_config` is TopFormer-T exactly (stem 16; stage widths 16, 16, 32,
64, 96; depths 1, 2, 2, 2, 2; kernels/expansions k3, k3e4 k3e3, k5e3 ×2, k3e3 ×2,
k5e6 ×2; four ViT blocks with 4 heads, key dim 16, ratios 2.0); `min_config` takes
the smallest option of every decision, `max_config` the largest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from qanas.errors import ConfigError
from qanas.space.base import Decision, SearchSpace, SubnetConfig, register_space
from qanas.space.layer_specs import conv_bn_act_specs, conv_out_hw, inverted_residual_specs
from targets.cost import LayerSpec

TOKEN_STRIDE = 64
"""Tokens live at 1/64 of the input: image sides must be multiples of this."""
INJECT_CHANNELS = 128
STEM_WIDTHS = (16, 24)
HEADS = (2, 4, 6, 8, 10, 12)
KEY_DIMS = (12, 14, 16, 18, 20)
RATIOS = (1.6, 1.8, 2.0, 2.2, 2.4)
VIT_DEPTHS = (1, 2)
VIT_GROUPS = 4


@dataclass(frozen=True)
class StageSlot:
    """The options of one MBConv stage: widths, depths, kernels, expansions, first stride."""

    widths: tuple[int, ...]
    depths: tuple[int, ...]
    kernels: tuple[int, ...]
    expansions: tuple[int, ...]
    stride: int

    @property
    def max_depth(self) -> int:
        """Blocks held by the supernet for this stage."""
        return max(self.depths)


STAGES: tuple[StageSlot, ...] = (
    StageSlot((16, 24), (1, 2), (3, 5), (1,), 1),
    StageSlot(tuple(range(16, 41, 8)), (1, 2, 3), (3, 5), (3, 4, 5), 2),
    StageSlot(tuple(range(24, 73, 8)), (1, 2, 3), (3, 5), (2, 3, 4, 5), 2),
    StageSlot(tuple(range(56, 137, 8)), (1, 2, 3), (3, 5), (2, 3, 4, 5), 2),
    StageSlot(tuple(range(88, 177, 8)), (1, 2, 3, 4), (3, 5), (4, 5, 6, 7), 2),
)
TOKEN_STAGES = (1, 2, 3, 4)
"""Stages (0-based) whose outputs are pooled into tokens: 1/4, 1/8, 1/16, 1/32."""
INJECT_STAGES = (2, 3, 4)
"""Stages that receive global semantics: 1/8, 1/16, 1/32."""
POOL_WINDOWS = (16, 8, 4, 2)
"""AvgPool2d window (= stride) of each token stage, bringing it to 1/64."""


def scaled(ratio: float, value: int) -> int:
    """int(ratio * value) as TopFormer computes widths, robust to float rounding (2.2*20)."""
    return int(ratio * value + 1e-6)


@dataclass(frozen=True)
class MBConvPlan:
    """One active inverted residual: widths, depthwise kernel, expansion, stride."""

    in_ch: int
    out_ch: int
    kernel: int
    expand: int
    stride: int


@dataclass(frozen=True)
class ViTPlan:
    """One active transformer block on `dim`-channel tokens."""

    dim: int
    heads: int
    key_dim: int
    value_dim: int
    mlp_hidden: int


@dataclass(frozen=True)
class TopFormerPlan:
    """A subnet as widths and blocks: what the supernet activates and `extract` builds.

    Attributes:
        stem: stem width.
        stages: the kept blocks of each stage.
        widths: output width of each stage.
        vit: the transformer blocks in order (group settings repeated `depth` times).
        vit_groups: (group index, depth) per group, for the supernet's block slots.
    """

    stem: int
    stages: tuple[tuple[MBConvPlan, ...], ...]
    widths: tuple[int, ...]
    vit: tuple[ViTPlan, ...]
    vit_groups: tuple[tuple[int, int], ...]

    @property
    def token_widths(self) -> tuple[int, ...]:
        """Channels each token stage contributes, in concatenation order."""
        return tuple(self.widths[i] for i in TOKEN_STAGES)

    @property
    def embed_dim(self) -> int:
        """Token width: the sum of the token stages' widths."""
        return sum(self.token_widths)

    def token_slices(self) -> tuple[tuple[int, int], ...]:
        """(start, end) token channels of each injected stage."""
        starts, pos = {}, 0
        for i in TOKEN_STAGES:
            starts[i] = (pos, pos + self.widths[i])
            pos += self.widths[i]
        return tuple(starts[i] for i in INJECT_STAGES)


def _labels(prefix: str, values) -> tuple[str, ...]:
    return tuple(f"{prefix}{v}" for v in values)


def _decisions() -> tuple[Decision, ...]:
    decisions = [Decision("stem", _labels("c", STEM_WIDTHS))]
    for s, slot in enumerate(STAGES, start=1):
        decisions += [Decision(f"s{s}.width", _labels("w", slot.widths)),
                      Decision(f"s{s}.depth", _labels("d", slot.depths))]
        for b in range(1, slot.max_depth + 1):
            decisions.append(Decision(f"s{s}.b{b}.kernel", _labels("k", slot.kernels)))
            if len(slot.expansions) > 1:
                decisions.append(Decision(f"s{s}.b{b}.expand", _labels("e", slot.expansions)))
    for g in range(1, VIT_GROUPS + 1):
        decisions += [Decision(f"vit{g}.heads", _labels("h", HEADS)),
                      Decision(f"vit{g}.keydim", _labels("q", KEY_DIMS)),
                      Decision(f"vit{g}.attn", _labels("a", RATIOS)),
                      Decision(f"vit{g}.mlp", _labels("m", RATIOS)),
                      Decision(f"vit{g}.depth", _labels("d", VIT_DEPTHS))]
    return tuple(decisions)


def check_image_size(image_size: Sequence[int]) -> tuple[int, int]:
    """Refuses sides that are not positive multiples of `TOKEN_STRIDE` (the token grid)."""
    h, w = (int(v) for v in image_size)
    if h <= 0 or w <= 0 or h % TOKEN_STRIDE or w % TOKEN_STRIDE:
        raise ConfigError(
            f"efficient-topformer pools its token pyramid to 1/{TOKEN_STRIDE} of the input, so "
            f"both image sides must be multiples of {TOKEN_STRIDE}; got {h}x{w}. Pass e.g. "
            f"--image-size {max(1, round(h / TOKEN_STRIDE)) * TOKEN_STRIDE} "
            f"{max(1, round(w / TOKEN_STRIDE)) * TOKEN_STRIDE}")
    return h, w


class EfficientTopFormerSpace(SearchSpace):
    """The `efficient-topformer` space (see the module docstring).

    Example:
        >>> space = get_space("efficient-topformer")  # doctest: +SKIP
        >>> space.plan(space.seed_config()).embed_dim  # TopFormer-T: 16 + 32 + 64 + 96  # doctest: +SKIP
        208
    """

    name = "efficient-topformer"

    def __init__(self, num_classes: int = 150):
        self.num_classes = num_classes
        self.decisions = _decisions()

    # -- reading a config --------------------------------------------------------------
    def _value(self, cfg: SubnetConfig, name: str, cast=int):
        return cast(cfg.label(name)[1:])

    def _choices(self, cfg: SubnetConfig) -> dict[str, str]:
        return dict(zip((d.name for d in self.decisions), cfg.labels(), strict=True))

    def plan(self, cfg: SubnetConfig) -> TopFormerPlan:
        """The widths and active blocks of `cfg`."""
        self.validate(cfg)
        labels = self._choices(cfg)

        def value(name, cast=int):
            return cast(labels[name][1:])

        stem = value("stem")
        in_ch, stages, widths = stem, [], []
        for s, slot in enumerate(STAGES, start=1):
            width, depth = value(f"s{s}.width"), value(f"s{s}.depth")
            blocks = []
            for b in range(1, depth + 1):
                expand = value(f"s{s}.b{b}.expand") if len(slot.expansions) > 1 else slot.expansions[0]
                blocks.append(MBConvPlan(in_ch, width, value(f"s{s}.b{b}.kernel"), expand,
                                         slot.stride if b == 1 else 1))
                in_ch = width
            stages.append(tuple(blocks))
            widths.append(width)
        dim = sum(widths[i] for i in TOKEN_STAGES)
        vit, groups = [], []
        for g in range(1, VIT_GROUPS + 1):
            heads, key_dim = value(f"vit{g}.heads"), value(f"vit{g}.keydim")
            block = ViTPlan(dim, heads, key_dim, scaled(value(f"vit{g}.attn", float), key_dim),
                            scaled(value(f"vit{g}.mlp", float), dim))
            depth = value(f"vit{g}.depth")
            vit += [block] * depth
            groups.append((g - 1, depth))
        return TopFormerPlan(stem, tuple(stages), tuple(widths), tuple(vit), tuple(groups))

    def is_active(self, cfg: SubnetConfig, decision: int) -> bool:
        """Whether decision `decision` changes the network of `cfg` (False beyond a stage's depth)."""
        name = self.decisions[decision].name
        if name.startswith("s") and ".b" in name:
            stage, block = name.split(".")[:2]
            return int(block[1:]) <= int(cfg.label(f"{stage}.depth")[1:])
        return True

    def canonical(self, cfg: SubnetConfig) -> SubnetConfig:
        """`cfg` with the decisions of blocks beyond each stage's depth set to option 0.

        Two configs build the same network exactly when their canonical forms are equal.
        """
        return SubnetConfig(self.name, tuple(
            c if self.is_active(cfg, i) else 0 for i, c in enumerate(cfg.choices)))

    def gate_units(self, cfg: SubnetConfig) -> dict:
        """Supernet unit → what `cfg` runs there: the stem's width, each kept MBConv block and
        transformer block slot (absent when beyond its depth), each injection's width."""
        plan = self.plan(cfg)
        units: dict = {"stem": plan.stem}
        for s, blocks in enumerate(plan.stages):
            units.update({f"stages.{s}.blocks.{b}": block for b, block in enumerate(blocks)})
        blocks = iter(plan.vit)
        for group, depth in plan.vit_groups:
            for j in range(depth):
                units[f"transformer.slots.{group * max(VIT_DEPTHS) + j}"] = next(blocks)
        units.update({f"injections.{n}": plan.widths[i] for n, i in enumerate(INJECT_STAGES)})
        return units

    # -- landmarks ---------------------------------------------------------------------
    def _extreme(self, pick) -> SubnetConfig:
        return SubnetConfig(self.name, tuple(pick(d.size) for d in self.decisions))

    def max_config(self) -> SubnetConfig:
        """The largest option of every decision."""
        return self._extreme(lambda n: n - 1)

    def min_config(self) -> SubnetConfig:
        """The smallest option of every decision."""
        return self._extreme(lambda n: 0)

    def seed_config(self) -> SubnetConfig:
        """TopFormer-T (Zhang et al., 2022; see the module docstring)."""
        labels = {"stem": "c16"}
        blocks = {1: ["k3"], 2: ["k3e4", "k3e3"], 3: ["k5e3", "k5e3"], 4: ["k3e3", "k3e3"],
                  5: ["k5e6", "k5e6"]}
        for s, (width, layers) in enumerate(zip((16, 16, 32, 64, 96), blocks.values(),
                                                strict=True), start=1):
            labels[f"s{s}.width"], labels[f"s{s}.depth"] = f"w{width}", f"d{len(layers)}"
            for b, text in enumerate(layers, start=1):
                labels[f"s{s}.b{b}.kernel"] = text[:2]
                if len(text) > 2:
                    labels[f"s{s}.b{b}.expand"] = text[2:]
        for g in range(1, VIT_GROUPS + 1):
            labels.update({f"vit{g}.heads": "h4", f"vit{g}.keydim": "q16", f"vit{g}.attn": "a2.0",
                           f"vit{g}.mlp": "m2.0", f"vit{g}.depth": "d1"})
        return self.canonical(SubnetConfig(self.name, tuple(
            d.options.index(labels[d.name]) if d.name in labels else 0 for d in self.decisions)))

    # -- models and costs ----------------------------------------------------------------
    def layer_specs(self, cfg: SubnetConfig, image_size: Sequence[int],
                    num_classes: int | None = None):
        """Analytic `LayerSpec`s of `extract(cfg)` for an (H, W) input (sides multiples of 64)."""
        return topformer_specs(self.plan(cfg), check_image_size(image_size),
                               self.num_classes if num_classes is None else num_classes)


def attention_specs(name: str, dim: int, heads: int, key_dim: int, value_dim: int,
                    hw: tuple[int, int]) -> list[LayerSpec]:
    """Specs of an `Attention` on an `hw` token grid (projections, two matmuls, softmax)."""
    tokens = hw[0] * hw[1]
    specs = conv_bn_act_specs(f"{name}.to_q", dim, heads * key_dim, hw, 1, act=None)
    specs += conv_bn_act_specs(f"{name}.to_k", dim, heads * key_dim, hw, 1, act=None)
    specs += conv_bn_act_specs(f"{name}.to_v", dim, heads * value_dim, hw, 1, act=None)
    specs += [
        LayerSpec("matmul", f"{name}.qk", key_dim, heads * tokens, hw, hw),
        LayerSpec("softmax", f"{name}.softmax", heads * tokens, heads * tokens, hw, hw),
        LayerSpec("matmul", f"{name}.av", tokens, heads * value_dim, hw, hw),
        LayerSpec("act", f"{name}.relu6", heads * value_dim, heads * value_dim, hw, hw),
    ]
    return specs + conv_bn_act_specs(f"{name}.proj", heads * value_dim, dim, hw, 1, act=None)


def topformer_specs(plan: TopFormerPlan, image_size: tuple[int, int],
                    num_classes: int) -> list[LayerSpec]:
    """Analytic layer specs of `qanas.supernet.topformer_blocks.build_topformer(plan)` at
    `image_size`, in execution order."""
    specs = conv_bn_act_specs("stem", 3, plan.stem, image_size, 3, 2)
    hw = conv_out_hw(image_size, 3, 2, 1)
    stage_hw = []
    for s, blocks in enumerate(plan.stages):
        for j, b in enumerate(blocks):
            specs += inverted_residual_specs(f"stages.{s}.{j}", b.in_ch, b.out_ch, hw, b.kernel,
                                             b.expand, b.stride)
            hw = conv_out_hw(hw, b.kernel, b.stride, 1)
        stage_hw.append(hw)
    token_hw = (image_size[0] // TOKEN_STRIDE, image_size[1] // TOKEN_STRIDE)
    for p, (i, window) in enumerate(zip(TOKEN_STAGES, POOL_WINDOWS, strict=True)):
        specs.append(LayerSpec("pool_avg", f"pools.{p}", plan.widths[i], plan.widths[i], stage_hw[i],
                               token_hw, (window, window), (window, window)))
    dim = plan.embed_dim
    specs.append(LayerSpec("concat", "tokens", dim, dim, token_hw, token_hw))
    for t, v in enumerate(plan.vit):
        name = f"transformer.{t}"
        specs += attention_specs(f"{name}.attn", dim, v.heads, v.key_dim, v.value_dim, token_hw)
        specs.append(LayerSpec("add", f"{name}.attn_add", dim, dim, token_hw, token_hw))
        specs += conv_bn_act_specs(f"{name}.mlp.fc1", dim, v.mlp_hidden, token_hw, 1, act=None)
        specs += conv_bn_act_specs(f"{name}.mlp.dw", v.mlp_hidden, v.mlp_hidden, token_hw, 3,
                                   groups=v.mlp_hidden)
        specs += conv_bn_act_specs(f"{name}.mlp.fc2", v.mlp_hidden, dim, token_hw, 1, act=None)
        specs.append(LayerSpec("add", f"{name}.mlp_add", dim, dim, token_hw, token_hw))
    c = INJECT_CHANNELS
    for n, i in enumerate(INJECT_STAGES):
        name, w, local_hw = f"injections.{n}", plan.widths[i], stage_hw[i]
        specs += conv_bn_act_specs(f"{name}.local", w, c, local_hw, 1, act=None)
        specs += conv_bn_act_specs(f"{name}.gate", w, c, token_hw, 1, act="hardsigmoid")
        specs.append(LayerSpec("resize", f"{name}.gate_up", c, c, token_hw, local_hw))
        specs.append(LayerSpec("mul", f"{name}.mul", c, c, local_hw, local_hw))
        specs += conv_bn_act_specs(f"{name}.embed", w, c, token_hw, 1, act=None)
        specs.append(LayerSpec("resize", f"{name}.embed_up", c, c, token_hw, local_hw))
        specs.append(LayerSpec("add", f"{name}.add", c, c, local_hw, local_hw))
    head_hw = stage_hw[INJECT_STAGES[0]]
    for n, i in enumerate(INJECT_STAGES[1:], start=1):
        specs.append(LayerSpec("resize", f"head.up{n}", c, c, stage_hw[i], head_hw))
        specs.append(LayerSpec("add", f"head.add{n}", c, c, head_hw, head_hw))
    specs += conv_bn_act_specs("head.fuse", c, c, head_hw, 1)
    specs += conv_bn_act_specs("head.classifier", c, num_classes, head_hw, 1, act=None, bias=True)
    specs.append(LayerSpec("resize", "upsample", num_classes, num_classes, head_hw, tuple(image_size)))
    return specs


register_space(EfficientTopFormerSpace())
