"""SqueezeNAS search spaces: `squeezenas-small`, `squeezenas-large`, `squeezenas-xlarge`.

Each superblock (one searchable layer) picks one of 13 candidates, as in
SqueezeNAS (Shaw et al., 2019): an inverted residual labelled ``k{k}e{e}g{g}``
or ``k{k}e{e}g{g}d2`` (depthwise kernel k, expansion e, groups g of *both* 1x1
convs, depthwise dilation d), or ``skip``.

Conventions of this implementation (the analytic costs and the supernet agree):

* An inverted residual always has its 1x1 expansion conv, also for e=1 (so g2
  groups both 1x1 convs, as the label says). There is no channel shuffle (a
  reshape/transpose the int8 compiler does not take); every channel count in
  these spaces is even, so groups of 2 divide them, and channels mix across
  groups in the neighbouring g1 layers, the skip projections and the head.
* ``skip`` is the identity when the block keeps its shape (stride 1, same
  channels); otherwise it is a projection: 1x1 conv with the block's stride +
  BN, no activation. Its cost counts like any layer.
* The backbone uses ReLU6, the decoders ReLU. In `layer_specs` BN is folded
  into its conv and each activation is an ``act`` spec after its conv (the
  convention of `qanas.supernet.blocks`).
* `SqueezeNASSpace.as_released` gives the same space with every detail of the released
  code that does not change the search (`RELEASED_CODE`): ReLU in the backbone,
  align_corners=True for the decoder's ×4 and final upsamplings, and the LR-ASPP gate's
  49×49 average pool at stride (16, 20) with a biased 1×1 conv. The published weights
  (`qanas import-weights squeezenas`) run on it with the authors' float outputs; the
  registered spaces keep ReLU6, align_corners=False and global pooling, which train at
  any image size (the 49×49 window needs inputs of 784×784 and up).

Macro-architectures, as the authors' released code builds them (stem conv 3x3 stride 2,
then stages (channels, blocks, first stride)):

* small: stem 16; (16,4,2) (24,4,2) (40,4,2) (48,4,1) (96,4,1); 1x1 conv to
  256; LR-ASPP (128 mid channels) with low-level features after block 8 (OS 8).
* large: stem 16; (16,1,1) (24,4,2) (32,4,2) (64,4,2) (96,4,1) (160,4,1)
  (160,1,1): the released code builds the last stage as 320 × a final width
  multiplier of 0.5; LR-ASPP (128 mid) with the last OS-8 block as low level.
* xlarge: stem 48; (24,1,1) (32,4,2) (48,4,2) (96,4,2) (144,4,1) (240,4,1)
  (320,1,1); the released DeepLabV3+ decoder (`_squeezenas_aspp_specs`): ASPP on the
  320-channel output (1x1 to 160, three 3x3 convs with groups = 160 at rates 6/12/18,
  the globally pooled input itself as the fifth branch) → 1x1 to 160; upsampled to
  output stride 4 and concatenated with a 1x1 (bias, no BN) of the last OS-4 block
  (32 → 32); 3x3 depthwise conv-BN-ReLU over the 192 channels; 1x1 classifier.

The six published networks (`qanas.space.squeezenas_published`) count within 0.1 % of
the GigaMACs the authors publish at 1024×2048 with 19 classes (4.47, 19.57, 32.73,
3.01, 9.39, 21.84). Interpretations: the stride-2 ``skip`` of the released code is a
factorized reduce (two 1x1 stride-2 convs on offset inputs, concatenated) and its
channel-changing stride-1 skip puts a ReLU before the 1x1 conv; both have the MACs and
parameters of our single 1x1 projection, which we keep (no offset slicing in the int8
compiler). LR-ASPP pools globally; the released code pools with a 49×49 window at
stride (16, 20), which needs a feature map of at least 49×49 (inputs of 784×784 and
up). Bilinear upsampling uses align_corners=False throughout (the released decoder
uses align_corners=True for its ×4 and ×8 upsamplings): neither changes MACs.

Landmarks: `max_config` is k5e6g1 everywhere; `min_config` is, per block, the
candidate with the fewest MACs (ties: fewest parameters) at the reference size
`REFERENCE_SIZE`: that is ``skip`` (identity or projection) in most blocks, but
a grouped e1 block where a stride-1 projection from C to 1.5C or more channels
costs more; `seed_config` is k3e6g1 everywhere (MobileNetV2's block).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from qanas.errors import ConfigError
from qanas.space.base import BlockShape, Decision, SearchSpace, SubnetConfig, register_space
from targets.cost import LayerSpec, peak_activation_elements, total_macs, total_params

SKIP = "skip"
_LABEL_RE = re.compile(r"^k(\d+)e(\d+)g(\d+)(?:d(\d+))?$")

REFERENCE_SIZE = (512, 1024)
"""Image size at which `min_config` compares candidates (Cityscapes half resolution)."""


@dataclass(frozen=True)
class OpSpec:
    """An inverted-residual candidate: depthwise kernel, expansion, 1x1 groups, dilation."""

    kernel: int
    expand: int
    groups: int
    dilation: int = 1

    @property
    def label(self) -> str:
        """The option label, e.g. ``k3e1g2d2`` (no ``d`` when the dilation is 1)."""
        text = f"k{self.kernel}e{self.expand}g{self.groups}"
        return text + (f"d{self.dilation}" if self.dilation != 1 else "")

    @classmethod
    def parse(cls, label: str) -> OpSpec:
        """Parses a label made by `label`; raises `ConfigError` otherwise."""
        match = _LABEL_RE.match(label)
        if match is None:
            raise ConfigError(f"{label!r} is not an inverted-residual label like 'k3e6g1' or 'k3e1g2d2'")
        k, e, g, d = match.groups()
        return cls(int(k), int(e), int(g), int(d) if d else 1)


CANDIDATES: tuple[OpSpec, ...] = tuple(
    OpSpec.parse(label)
    for label in (
        "k3e1g1", "k3e1g2", "k3e3g1", "k3e6g1", "k5e1g1", "k5e1g2", "k5e3g1", "k5e6g1",
        "k3e1g1d2", "k3e1g2d2", "k3e3g1d2", "k3e6g1d2",
    )
)
OPTIONS: tuple[str, ...] = tuple(c.label for c in CANDIDATES) + (SKIP,)
"""The 13 option labels of every superblock, in decision order."""


@dataclass(frozen=True)
class BlockPlan:
    """Shape of one superblock: channels in/out and stride (the same for all candidates)."""

    index: int
    name: str
    in_channels: int
    out_channels: int
    stride: int


@dataclass(frozen=True)
class MacroArch:
    """The fixed skeleton of a SqueezeNAS space.

    Attributes:
        stem_channels: output channels of the 3x3 stride-2 stem conv.
        stages: (channels, blocks, first stride) per stage.
        head_channels: a 1x1 conv+BN+ReLU6 to this width after the last block, or None.
        decoder: ``"lraspp"`` or ``"squeezenas-aspp"`` (the released XLarge decoder).
        low_level_stride: the low-level features come from the last block at this output stride.
        lraspp_mid: mid channels of LR-ASPP.
        aspp_rates / aspp_channels: atrous rates and width of the XLarge ASPP.
        activation: of the stem, the backbone blocks and the head conv.
        align_corners: of the decoder's ×4 and final bilinear upsamplings.
        lraspp_pool: (window, stride H, stride W) of the LR-ASPP gate's average pool, or
            None for global pooling.
        lraspp_scale_bias: whether the LR-ASPP gate's 1x1 conv has a bias.
    """

    stem_channels: int
    stages: tuple[tuple[int, int, int], ...]
    head_channels: int | None
    decoder: str
    low_level_stride: int
    lraspp_mid: int = 128
    aspp_rates: tuple[int, ...] = (6, 12, 18)
    aspp_channels: int = 160
    activation: str = "relu6"
    align_corners: bool = False
    lraspp_pool: tuple[int, int, int] | None = None
    lraspp_scale_bias: bool = False

    def __post_init__(self):
        if self.lraspp_scale_bias and self.lraspp_pool is None:
            raise ConfigError("lraspp_scale_bias is the released code's windowed LR-ASPP gate; "
                              "set lraspp_pool too (or neither)")

    def blocks(self) -> tuple[BlockPlan, ...]:
        """The superblocks in order, with their input/output channels and strides."""
        plans, in_ch = [], self.stem_channels
        for s, (channels, count, first_stride) in enumerate(self.stages):
            for b in range(count):
                i = len(plans)
                plans.append(BlockPlan(i, f"s{s + 1}.b{b + 1}", in_ch, channels, first_stride if b == 0 else 1))
                in_ch = channels
        return tuple(plans)

    def low_level_index(self) -> int:
        """Index of the block whose output feeds the decoder's low-level branch."""
        stride, index = 2, None
        for plan in self.blocks():
            stride *= plan.stride
            if stride == self.low_level_stride:
                index = plan.index
        if index is None:
            raise ConfigError(f"no block has output stride {self.low_level_stride}")
        return index


def _out_hw(hw: tuple[int, int], stride: int) -> tuple[int, int]:
    """Spatial size after a 'same'-padded conv with `stride` (ceil division)."""
    return (-(-hw[0] // stride), -(-hw[1] // stride))


def _conv(name, cin, cout, hw, k=1, stride=1, dilation=1, groups=1, bias=False,
          act=None) -> list[LayerSpec]:
    """A conv (BN folded) and, when `act` is given, its activation spec."""
    out_hw = _out_hw(hw, stride)
    specs = [LayerSpec("conv", name, cin, cout, hw, out_hw, (k, k), (stride, stride),
                       (dilation, dilation), groups, bias)]
    if act is not None:
        specs.append(LayerSpec("act", f"{name}.{act}", cout, cout, out_hw, out_hw))
    return specs


def _elementwise(op, name, channels, hw, in_channels=None, out_hw=None) -> list[LayerSpec]:
    """A single non-conv spec (add, mul, concat, resize, global_pool)."""
    return [LayerSpec(op, name, in_channels or channels, channels, hw, out_hw or hw)]


def block_specs(plan: BlockPlan, label: str, hw: tuple[int, int],
                act: str = "relu6") -> list[LayerSpec]:
    """Layer specs of candidate `label` in superblock `plan` at input size `hw`."""
    name, cin, cout, s = f"blocks.{plan.index}", plan.in_channels, plan.out_channels, plan.stride
    if label == SKIP:
        if s == 1 and cin == cout:
            return []
        return _conv(f"{name}.proj", cin, cout, hw, 1, s)
    op = OpSpec.parse(label)
    hidden = cin * op.expand
    out_hw = _out_hw(hw, s)
    specs = (
        _conv(f"{name}.expand", cin, hidden, hw, 1, 1, 1, op.groups, act=act)
        + _conv(f"{name}.dw", hidden, hidden, hw, op.kernel, s, op.dilation, hidden, act=act)
        + _conv(f"{name}.project", hidden, cout, out_hw, 1, 1, 1, op.groups)
    )
    if s == 1 and cin == cout:
        specs += _elementwise("add", f"{name}.add", cout, out_hw)
    return specs


def _lraspp_specs(arch: MacroArch, high_ch, high_hw, low_ch, low_hw, num_classes) -> list[LayerSpec]:
    """Specs of `qanas.supernet.blocks.LRASPPHead`, in its execution order."""
    mid = arch.lraspp_mid
    if arch.lraspp_pool is None:
        pool_hw = (1, 1)
        pool = _elementwise("global_pool", "decoder.pool", high_ch, high_hw, out_hw=pool_hw)
        gate_up: list[LayerSpec] = []
    else:
        pool_hw = lraspp_pool_size(arch.lraspp_pool, high_hw)
        pool = _elementwise("avg_pool", "decoder.pool", high_ch, high_hw, out_hw=pool_hw)
        gate_up = _elementwise("resize", "decoder.gate_up", mid, pool_hw, out_hw=high_hw)
    return (
        _conv("decoder.cbr", high_ch, mid, high_hw, act="relu")
        + pool
        + _conv("decoder.scale", high_ch, mid, pool_hw, bias=arch.lraspp_scale_bias,
                act="sigmoid")
        + gate_up
        + _elementwise("mul", "decoder.mul", mid, high_hw)
        + _elementwise("resize", "decoder.resize", mid, high_hw, out_hw=low_hw)
        + _conv("decoder.low_classifier", low_ch, num_classes, low_hw, bias=True)
        + _conv("decoder.high_classifier", mid, num_classes, low_hw, bias=True)
        + _elementwise("add", "decoder.add", num_classes, low_hw)
    )


def _squeezenas_aspp_specs(arch: MacroArch, high_ch, high_hw, low_ch, low_hw,
                           num_classes) -> list[LayerSpec]:
    """Specs of `qanas.supernet.squeezenas_blocks.SqueezeNASASPPHead`, in execution order."""
    mid = arch.aspp_channels
    fused = mid + low_ch
    specs = _conv("decoder.aspp.b0", high_ch, mid, high_hw, act="relu")
    for i, rate in enumerate(arch.aspp_rates, start=1):
        specs += _conv(f"decoder.aspp.b{i}", high_ch, mid, high_hw, 3, 1, rate, mid, act="relu")
    cat = mid * (len(arch.aspp_rates) + 1) + high_ch
    return (
        specs
        + _elementwise("global_pool", "decoder.aspp.pool", high_ch, high_hw, out_hw=(1, 1))
        + _elementwise("resize", "decoder.aspp.pool_up", high_ch, (1, 1), out_hw=high_hw)
        + _elementwise("concat", "decoder.aspp.cat", cat, high_hw, in_channels=mid)
        + _conv("decoder.aspp.project", cat, mid, high_hw, act="relu")
        + _elementwise("resize", "decoder.up", mid, high_hw, out_hw=low_hw)
        + _conv("decoder.low_proj", low_ch, low_ch, low_hw, bias=True)
        + _elementwise("concat", "decoder.cat", fused, low_hw, in_channels=mid)
        + _conv("decoder.fuse", fused, fused, low_hw, 3, 1, 1, fused, act="relu")
        + _conv("decoder.classifier", fused, num_classes, low_hw, bias=True)
    )


_DECODER_SPECS = {"lraspp": _lraspp_specs, "squeezenas-aspp": _squeezenas_aspp_specs}

RELEASED_CODE = {"activation": "relu", "align_corners": True, "lraspp_pool": (49, 16, 20),
                 "lraspp_scale_bias": True}
"""The `MacroArch` details of the authors' released code (see `SqueezeNASSpace.as_released`)."""


def lraspp_pool_size(pool: tuple[int, int, int], high_hw: tuple[int, int]) -> tuple[int, int]:
    """Output size of the LR-ASPP gate's windowed average pool on a `high_hw` feature map.

    Raises:
        ConfigError: the feature map is smaller than the window.
    """
    window, stride_h, stride_w = pool
    if min(high_hw) < window:
        raise ConfigError(
            f"the LR-ASPP gate pools {window}x{window} windows (the released SqueezeNAS code), "
            f"but the feature map is only {high_hw[0]}x{high_hw[1]}: use an input of at least "
            f"{window * 16}x{window * 16}, or the registered space (global pooling)")
    return ((high_hw[0] - window) // stride_h + 1, (high_hw[1] - window) // stride_w + 1)


class SqueezeNASSpace(SearchSpace):
    """One SqueezeNAS space: a `MacroArch` with 13 options per superblock.

    Example:
        >>> space = get_space("squeezenas-small")  # doctest: +SKIP
        >>> space.seed_config().to_str()  # doctest: +SKIP
        'squeezenas-small:k3e6g1_k3e6g1_...'
    """

    def __init__(self, name: str, arch: MacroArch, num_classes: int = 19):
        if arch.decoder not in _DECODER_SPECS:
            raise ConfigError(f"unknown decoder {arch.decoder!r}; choose one of "
                              f"{sorted(_DECODER_SPECS)}")
        self.name = name
        self.arch = arch
        self.num_classes = num_classes
        self.plans = arch.blocks()
        self.low_level_index = arch.low_level_index()
        self.decisions = tuple(Decision(p.name, OPTIONS) for p in self.plans)

    def as_released(self) -> SqueezeNASSpace:
        """This space (same name, decisions and costs but for the LR-ASPP pool) with the
        released code's activation, upsampling and LR-ASPP gate (`RELEASED_CODE`).

        Not registered: `qanas import-weights squeezenas` records these options in the
        standalone checkpoint, which rebuilds its model on this space.
        """
        return SqueezeNASSpace(self.name, replace(self.arch, **RELEASED_CODE), self.num_classes)

    def arch_options(self) -> dict:
        """The `RELEASED_CODE` options in which this space differs from the registered one."""
        default = MacroArch(self.arch.stem_channels, self.arch.stages, self.arch.head_channels,
                            self.arch.decoder, self.arch.low_level_stride)
        return {k: getattr(self.arch, k) for k in RELEASED_CODE
                if getattr(self.arch, k) != getattr(default, k)}

    def with_arch_options(self, options: dict) -> SqueezeNASSpace:
        """This space with `options` (keys of `RELEASED_CODE`) replaced in its `MacroArch`.

        Raises:
            ConfigError: an unknown option.
        """
        unknown = sorted(set(options) - set(RELEASED_CODE))
        if unknown:
            raise ConfigError(f"unknown SqueezeNAS architecture options {unknown}; known: "
                              f"{sorted(RELEASED_CODE)}")
        fixed = {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
        return SqueezeNASSpace(self.name, replace(self.arch, **fixed), self.num_classes)

    def _uniform(self, label: str) -> SubnetConfig:
        return SubnetConfig(self.name, (OPTIONS.index(label),) * len(self.plans))

    def max_config(self) -> SubnetConfig:
        """k5e6g1 in every superblock (the largest candidate everywhere)."""
        return self._uniform("k5e6g1")

    def min_config(self) -> SubnetConfig:
        """Per block the fewest-MAC candidate at `REFERENCE_SIZE` (ties: fewer params, then order)."""
        choices, hw = [], _out_hw(REFERENCE_SIZE, 2)
        for plan in self.plans:
            costs = []
            for i, label in enumerate(OPTIONS):
                specs = block_specs(plan, label, hw)
                costs.append((total_macs(specs), total_params(specs), i))
            choices.append(min(costs)[2])
            hw = _out_hw(hw, plan.stride)
        return SubnetConfig(self.name, tuple(choices))

    def seed_config(self) -> SubnetConfig:
        """k3e6g1 everywhere: MobileNetV2's inverted residual on this skeleton."""
        return self._uniform("k3e6g1")

    def gate_units(self, cfg: SubnetConfig) -> dict[str, int]:
        """Superblock ``blocks.<i>`` → the option it runs (every superblock runs)."""
        return {f"blocks.{i}": c for i, c in enumerate(cfg.choices)}

    def block_shapes(self, image_size: tuple[int, int]) -> list[BlockShape]:
        """Every superblock's input shape: each candidate keeps its channels and stride."""
        hw = _out_hw(tuple(image_size), 2)  # after the stride-2 stem
        shapes = []
        for plan in self.plans:
            shapes.append(BlockShape(plan.index, plan.in_channels, hw, plan.out_channels,
                                     plan.stride))
            hw = _out_hw(hw, plan.stride)
        return shapes

    def layer_specs(
        self, cfg: SubnetConfig, image_size: tuple[int, int], num_classes: int | None = None
    ) -> list[LayerSpec]:
        """The subnet's layers in execution order (BN folded; each activation is an `act` spec).

        Args:
            cfg: a subnet of this space.
            image_size: input (H, W).
            num_classes: output classes of the classifier convs (`self.num_classes` when None).
        """
        self.validate(cfg)
        num_classes = self.num_classes if num_classes is None else num_classes
        arch = self.arch
        hw = _out_hw(tuple(image_size), 2)
        act = arch.activation
        specs = _conv("stem", 3, arch.stem_channels, tuple(image_size), 3, 2, act=act)
        low_ch = low_hw = None
        for plan, label in zip(self.plans, cfg.labels(), strict=True):
            specs += block_specs(plan, label, hw, act)
            hw = _out_hw(hw, plan.stride)
            if plan.index == self.low_level_index:
                low_ch, low_hw = plan.out_channels, hw
        high_ch = self.plans[-1].out_channels
        if arch.head_channels is not None:
            specs += _conv("head", high_ch, arch.head_channels, hw, act=act)
            high_ch = arch.head_channels
        specs += _DECODER_SPECS[arch.decoder](arch, high_ch, hw, low_ch, low_hw, num_classes)
        specs += _elementwise("resize", "upsample", num_classes, low_hw, out_hw=tuple(image_size))
        return specs

    def costs(self, cfg: SubnetConfig, image_size: tuple[int, int],
              num_classes: int | None = None) -> dict[str, int]:
        """MACs, parameters and peak activation elements (largest in+out of one layer)."""
        specs = self.layer_specs(cfg, image_size, num_classes)
        return {
            "macs": total_macs(specs),
            "params": total_params(specs),
            "peak_activation_elements": peak_activation_elements(specs),
        }


SMALL = MacroArch(
    stem_channels=16,
    stages=((16, 4, 2), (24, 4, 2), (40, 4, 2), (48, 4, 1), (96, 4, 1)),
    head_channels=256, decoder="lraspp", low_level_stride=8,
)
LARGE = MacroArch(
    stem_channels=16,
    stages=((16, 1, 1), (24, 4, 2), (32, 4, 2), (64, 4, 2), (96, 4, 1), (160, 4, 1), (160, 1, 1)),
    head_channels=None, decoder="lraspp", low_level_stride=8,
)
XLARGE = MacroArch(
    stem_channels=48,
    stages=((24, 1, 1), (32, 4, 2), (48, 4, 2), (96, 4, 2), (144, 4, 1), (240, 4, 1), (320, 1, 1)),
    head_channels=None, decoder="squeezenas-aspp", low_level_stride=4,
)

register_space(SqueezeNASSpace("squeezenas-small", SMALL))
register_space(SqueezeNASSpace("squeezenas-large", LARGE))
register_space(SqueezeNASSpace("squeezenas-xlarge", XLARGE))
