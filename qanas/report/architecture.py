"""The chosen subnet drawn block by block, from its architecture string.

The blocks are not copied from results.json: the arch string is parsed by its search
space (`qanas.space.bits.parse_config`, which also reads the per-conv weight bits of a
mixed-precision ``...@w84...`` string) and expanded into layers by `space.layer_specs` at the
run's image size and class count, exactly as the cost models see it. Layers are grouped
by name (``stem``, ``blocks.3``, ``features.5``, ``decoder``...); a block's kernel,
expansion, groups, dilation and stride are read off its layers. A SqueezeNAS superblock
whose choice is an identity ``skip`` has no layers and is drawn as an identity block.
A mixed-precision subnet's blocks also carry the weight bits of their convs.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

from qanas.report.model import ReportError
from qanas.report.plotting import subplots, to_base64


@dataclass(frozen=True)
class Block:
    """One drawn block of the subnet.

    Attributes:
        name: layer-name prefix ("stem", "blocks.3", "decoder").
        kind: "conv", "inverted residual", "identity" or "module".
        summary: e.g. "k5 e6 g1 d2 s2 +res", read off the layers.
        choice: the search decision and its chosen label, when the space says which.
        in_channels, out_channels, in_hw, out_hw: tensor shapes around the block.
        macs, params: analytic counts of its layers.
        layers: number of layer specs in the block.
        weight_bits: weight bits of its convs in order (empty for an all-int8 subnet).
    """

    name: str
    kind: str
    summary: str
    choice: str
    in_channels: int
    out_channels: int
    in_hw: tuple[int, int]
    out_hw: tuple[int, int]
    macs: int
    params: int
    layers: int
    weight_bits: tuple[int, ...] = ()


def _group_key(name: str) -> str:
    parts = name.split(".")
    return ".".join(parts[:2]) if len(parts) >= 2 and parts[1].isdigit() else parts[0]


def _describe(specs) -> tuple[str, str]:
    convs = [s for s in specs if s.op == "conv"]
    residual = any(s.op == "add" for s in specs)
    dws = [s for s in convs if s.groups > 1 and s.groups == s.in_channels == s.out_channels]
    if dws:
        dw = dws[0]
        before = [s for s in convs if specs.index(s) < specs.index(dw)]
        expand = before[-1] if before else None
        ratio = expand.out_channels / expand.in_channels if expand else 1.0
        groups = expand.groups if expand else 1
        text = f"k{dw.kernel[0]} e{ratio:g} g{groups}"
        text += f" d{dw.dilation[0]}" if dw.dilation[0] > 1 else ""
        stride = max(s.stride[0] for s in convs)
        text += f" s{stride}" if stride > 1 else ""
        return "inverted residual", text + (" +res" if residual else "")
    if len(convs) == 1 and len(specs) <= 3:
        c = convs[0]
        text = f"conv {c.kernel[0]}x{c.kernel[1]}" + (f" s{c.stride[0]}" if c.stride[0] > 1 else "")
        text += f" g{c.groups}" if c.groups > 1 else ""
        return "conv", text + (" +res" if residual else "")
    others = []
    for s in specs:
        if s.op not in ("conv", "act") and s.op not in others:
            others.append(s.op.replace("global_pool", "gpool"))
    return "module", ", ".join([f"{len(convs)} conv"] * bool(convs) + others)


def subnet_blocks(arch: str, image_size, num_classes: int | None = None) -> list[Block]:
    """The blocks of `arch` (an architecture string, plain or ``...@w84...``) at `image_size`.

    Raises:
        ReportError: the arch string does not parse in its space, or its weight bits do
            not give one digit per searchable conv.
    """
    cfg = _parse(arch)
    space = cfg.search_space
    specs = _layer_specs(cfg, image_size, num_classes)
    widths = iter(_conv_bits(cfg, specs, num_classes))
    groups: dict[str, list] = {}
    conv_bits: dict[str, list[int]] = {}
    for s in specs:
        groups.setdefault(_group_key(s.name), []).append(s)
        width = next(widths, None) if s.op == "conv" else None
        if width is not None:
            conv_bits.setdefault(_group_key(s.name), []).append(width)
    plans = {p.index: p for p in getattr(space, "plans", ())}
    labels = cfg.labels()
    blocks = []
    for key, members in groups.items():
        kind, summary = _describe(members)
        choice = ""
        if key.startswith("blocks.") and int(key.split(".")[1]) in plans:
            plan = plans[int(key.split(".")[1])]
            choice = f"{plan.name} = {labels[plan.index]}"
        blocks.append(Block(key, kind, summary, choice, members[0].in_channels,
                            members[-1].out_channels, tuple(members[0].in_hw),
                            tuple(members[-1].out_hw), sum(s.macs for s in members),
                            sum(s.params for s in members), len(members),
                            tuple(conv_bits.get(key, ()))))
    return _with_identities(blocks, plans, labels)


def _layer_specs(cfg, image_size, num_classes: int | None):
    """The layer descriptors of `cfg`'s architecture at the run's size and class count."""
    from qanas.space.bits import arch_of

    space = cfg.search_space
    kwargs = {}
    if num_classes is not None and "num_classes" in inspect.signature(space.layer_specs).parameters:
        kwargs["num_classes"] = int(num_classes)
    return space.layer_specs(arch_of(cfg), tuple(int(v) for v in image_size), **kwargs)


@dataclass(frozen=True)
class ConvBits:
    """One conv of a mixed-precision subnet: its shape, weight bits and weight bytes.

    Attributes:
        name: the layer descriptor's name (``blocks.3.expand``...).
        in_channels, out_channels, kernel, groups: its shape.
        bits: its weight bit width (4 or 8).
        weight_bytes: bytes of its weights as the compiler stores them at `bits`
            (`qanas.space.layer_bits.stored_weight_bytes`: packed rows for a 4-bit conv);
            `weight_bytes_int8` at 8 bits.
    """

    name: str
    in_channels: int
    out_channels: int
    kernel: tuple[int, int]
    groups: int
    bits: int
    weight_bytes: int
    weight_bytes_int8: int


def subnet_conv_bits(arch: str, image_size, num_classes: int | None = None) -> list[ConvBits]:
    """Every conv of a mixed-precision `arch` with its weight bits and bytes; [] for int8.

    Raises:
        ReportError: the arch string does not parse, or its bits do not fit its subnet.
    """
    from qanas.space.layer_bits import conv_layers, stored_weight_bytes, weight_bytes

    cfg = _parse(arch)
    specs = _layer_specs(cfg, image_size, num_classes)
    widths = _conv_bits(cfg, specs, num_classes)
    if not widths:
        return []
    stored = stored_weight_bytes(specs, widths)
    return [ConvBits(s.name, s.in_channels, s.out_channels, tuple(s.kernel), s.groups, b,
                     nbytes, weight_bytes(s, 8))
            for s, b, nbytes in zip(conv_layers(specs), widths, stored, strict=True)]


def _parse(arch: str):
    from qanas.errors import ConfigError
    from qanas.space.bits import parse_config

    try:
        return parse_config(arch)
    except (ConfigError, KeyError, LookupError) as exc:
        raise ReportError(f"chosen arch {arch!r} does not parse: {exc}") from exc


def _conv_bits(cfg, specs, num_classes: int | None) -> list[int]:
    """Weight bits of every conv of `specs` for a mixed-precision config; [] for a plain one."""
    from qanas.space.bits import searched_bits

    searched = searched_bits(cfg)
    if searched is None:
        return []
    from qanas.space.layer_bits import conv_layers, layer_bit_widths

    convs = conv_layers(specs)
    # Without a class count the space's default classifier is the last conv.
    classes = num_classes if num_classes is not None else convs[-1].out_channels
    try:
        return layer_bit_widths(specs, classes, searched)
    except ValueError as exc:
        raise ReportError(f"{cfg.to_str()!r}: {exc}; a mixed-precision string has one digit "
                          "per searchable conv at the run's class count") from exc


def weight_bits_of(arch: str) -> str | None:
    """``"k of n searchable convs 4-bit"`` for a mixed-precision string, None for int8.

    Raises:
        ReportError: the arch string does not parse.
    """
    from qanas.space.bits import searched_bits

    bits = searched_bits(_parse(arch))
    if bits is None:
        return None
    return f"{sum(b == 4 for b in bits)} of {len(bits)} searchable convs 4-bit"


def _with_identities(blocks: list[Block], plans: dict, labels) -> list[Block]:
    """Inserts the superblocks that have no layers (identity skips) at their place."""
    present = {b.name for b in blocks}
    out: list[Block] = []
    pending = sorted(i for i in plans if f"blocks.{i}" not in present)
    for b in blocks:
        if b.name.startswith("blocks."):
            index = int(b.name.split(".")[1])
            while pending and pending[0] < index:
                out.append(_identity(plans[pending.pop(0)], labels, out[-1] if out else b))
        elif pending and any(o.name.startswith("blocks.") for o in out):
            while pending:
                out.append(_identity(plans[pending.pop(0)], labels, out[-1]))
        out.append(b)
    return out


def _identity(plan, labels, previous: Block) -> Block:
    return Block(f"blocks.{plan.index}", "identity", "identity (no layers)",
                 f"{plan.name} = {labels[plan.index]}", previous.out_channels,
                 previous.out_channels, previous.out_hw, previous.out_hw, 0, 0, 0)


KIND_COLORS = {"conv": "#9ecae1", "inverted residual": "#4292c6", "identity": "#eeeeee",
               "module": "#fdae6b"}


def draw_blocks(blocks: list[Block], title: str) -> str:
    """The block diagram (one row per block, MACs bar on the right) as a base64 PNG."""
    if not blocks:
        raise ReportError("the subnet has no layers to draw")
    n = len(blocks)
    fig, axes = subplots(width=10.5, height=0.34 * n + 1.0)
    ax = axes[0][0]
    most = max(b.macs for b in blocks) or 1
    for row, b in enumerate(blocks):  # top to bottom = execution order
        y = n - 1 - row
        ax.add_patch(_box(b, y))
        text_color = "white" if b.kind == "inverted residual" else "black"
        label = f"{b.name}" + (f"  [{b.choice}]" if b.choice else "")
        ax.text(0.1, y + 0.4, label, va="center", fontsize=7.5, color=text_color)
        summary = b.summary + (f"  w{''.join(map(str, b.weight_bits))}" if b.weight_bits else "")
        ax.text(2.7, y + 0.4, summary, va="center", fontsize=7.5, color=text_color,
                weight="bold")
        ax.text(5.25, y + 0.4, f"{b.in_channels}→{b.out_channels} ch, "
                f"{b.out_hw[0]}×{b.out_hw[1]}", va="center", fontsize=7.5, color=text_color)
        if b.macs:
            ax.barh(y + 0.4, 3.0 * b.macs / most, left=7.0, height=0.6, color="#74c476")
            ax.text(7.05 + 3.0 * b.macs / most, y + 0.4, f"{b.macs / 1e6:.2f} M", va="center",
                    fontsize=7)
    ax.set_xlim(0, 11)
    ax.set_ylim(-0.2, n + 0.2)
    ax.axis("off")
    ax.set_title(title, fontsize=9)
    ax.text(7.0, n + 0.05, "MACs per block", fontsize=7.5)
    return to_base64(fig)


def _box(b: Block, y: float):
    from matplotlib.patches import FancyBboxPatch

    return FancyBboxPatch((0.0, y + 0.05), 6.9, 0.7, boxstyle="round,pad=0.02",
                          facecolor=KIND_COLORS.get(b.kind, "#dddddd"),
                          edgecolor="#555555", linewidth=0.5,
                          hatch="//" if b.kind == "identity" else None)
