"""Which weight layers of a subnet may take fewer weight bits, and what their weights cost.

Mixed precision (docs/mixed-precision.md) chooses 4 or 8 weight bits per conv layer.
These convs stay int8:

* the first conv (the stem, which sees the raw image) and the classifiers (the convs
  that write the class logits: ``out_channels == num_classes``): they hold few weights
  and carry much of the quantization error;
* the convs the compiler keeps in int8 bytes whatever their values
  (docs/int4-weights.md): depthwise convs (the int8 depthwise kernel) and windows of
  more than `compiler.kernels.packing_s4.PATCH_MAX` weights. 4 bits there would cost
  accuracy and save no flash.

Every other conv is *searchable*, and a searchable conv at 4 bits is stored packed and
runs on the int4 convolutions wherever the compiler puts it (`int4_kernel_layers`: the one
rule the flash here and the latency model, `qanas.cost.int4_latency`, share): as its own
``qanas_*_s4`` step, as the expand or project stage of the fused inverted-residual kernel
(`fused_convs`, both ``--optimise`` modes), or as a layer of the patch stage
(``--optimise size``). `int4_step_layers` names those with a step of their own.

Conv layers are taken in definition order, which `SearchSpace.layer_specs` and the
extracted subnet's ``named_modules()`` share (`tests/qanas/space/test_bits_space.py` checks it on
every space), so a bit width chosen from the layer descriptors names the same layer
of the model.

Flash follows the compiler's storage (`compiler.kernels.packing_s4`): the weights of a
4-bit conv are one row per output channel, two per byte, each row
padded to a multiple of 8 weights (`stored_weight_bytes`); the int32 bias and the
per-channel requantization parameters are as for int8.

Example:
    >>> from targets.cost import LayerSpec
    >>> stem = LayerSpec("conv", "stem", 3, 16, (8, 8), (4, 4), kernel=(3, 3))
    >>> body = LayerSpec("conv", "b", 16, 32, (4, 4), (4, 4))
    >>> head = LayerSpec("conv", "cls", 32, 4, (4, 4), (4, 4))
    >>> searchable_layers([stem, body, head], num_classes=4)
    [1]
    >>> weight_bytes(body, 4), weight_bytes(body, 8)
    (256, 512)
    >>> weight_bytes(LayerSpec("conv", "c", 12, 2, (4, 4), (4, 4)), 4)  # rows of 16 nibbles
    16
"""

from __future__ import annotations

from collections.abc import Sequence

from compiler.kernels.packing_s4 import PATCH_MAX, row_bytes
from targets.cost import LayerSpec
from targets.latency import layer_class

WEIGHT_BIT_CHOICES = (8, 4)
"""The weight bit widths a searchable layer chooses from (int8 first: the default)."""


def conv_layers(specs: Sequence[LayerSpec]) -> list[LayerSpec]:
    """The conv descriptors of `specs`, in order."""
    return [s for s in specs if s.op == "conv"]


def _depth(spec: LayerSpec) -> int:
    """Weights per output channel (the length of a packed row)."""
    return spec.kernel[0] * spec.kernel[1] * (spec.in_channels // spec.groups)


def packs_int4(spec: LayerSpec) -> bool:
    """True when the compiler stores this conv's 4-bit weights packed (not depthwise, and a
    window of at most `PATCH_MAX` weights)."""
    depthwise = spec.groups > 1 and spec.groups == spec.in_channels
    return not depthwise and _depth(spec) <= PATCH_MAX


def searchable_layers(specs: Sequence[LayerSpec], num_classes: int) -> list[int]:
    """Indices (into `conv_layers(specs)`) of the convs whose weight bits are searched."""
    convs = conv_layers(specs)
    return [i for i, s in enumerate(convs)
            if i > 0 and s.out_channels != num_classes and packs_int4(s)]


def weight_bytes(spec: LayerSpec, bits: int) -> int:
    """Bytes of the weights of one conv: 8 bits one per weight, 4 bits packed rows.

    Raises:
        ValueError: `bits` other than 4 or 8, or 4 for a conv the compiler does not pack.
    """
    if bits == 8:
        return _depth(spec) * spec.out_channels
    if bits == 4 and packs_int4(spec):
        return row_bytes(_depth(spec)) * spec.out_channels
    raise ValueError(f"no int{bits} storage for conv {spec.name} (depth {_depth(spec)}, "
                     f"groups {spec.groups}); weights are 8 bits, or 4 for packable convs")


def layer_bit_widths(specs: Sequence[LayerSpec], num_classes: int,
                     searched: Sequence[int]) -> list[int]:
    """Weight bits of every conv of `specs`: `searched` for the searchable ones, 8 elsewhere.

    Raises:
        ValueError: `searched` does not have one width per searchable layer.
    """
    slots = searchable_layers(specs, num_classes)
    if len(searched) != len(slots):
        raise ValueError(f"{len(searched)} weight bit widths for {len(slots)} searchable layers")
    bits = [8] * len(conv_layers(specs))
    for slot, width in zip(slots, searched, strict=True):
        bits[slot] = int(width)
    return bits


def fused_blocks(specs: Sequence[LayerSpec]) -> list[list[str]]:
    """The convs the compiler fuses into each of its inverted-residual steps
    (`compiler.passes.fuse_inverted_residual`, both ``--optimise`` modes), block by block in
    order: around each depthwise conv, the 1×1 convs of the same module just before
    (expand) and after (project) it among the convs; a depthwise conv with neither is no
    block."""
    convs = conv_layers(specs)
    blocks = []
    for k, conv in enumerate(convs):
        if layer_class(conv) != "depthwise":
            continue
        parent = conv.name.rpartition(".")[0]
        block = [other.name for other in convs[max(k - 1, 0):k + 2]
                 if other is conv or (layer_class(other) == "pointwise"
                                      and other.name.rpartition(".")[0] == parent)]
        if len(block) > 1:
            blocks.append(block)
    return blocks


def fused_convs(specs: Sequence[LayerSpec]) -> set[str]:
    """Names of the convs of every `fused_blocks` block."""
    return {name for block in fused_blocks(specs) for name in block}


def int4_kernel_layers(specs: Sequence[LayerSpec], widths: Sequence[int]) -> list[str]:
    """Names of the convs of `specs` that run on the int4 kernels and store packed 4-bit
    weights, in order: every 4-bit conv (a searchable one: `layer_bit_widths` gives 4 to
    no other), in a fused inverted residual or not.

    Args:
        specs: the subnet's layer descriptors.
        widths: weight bits of every conv of `specs` (`layer_bit_widths`).
    """
    convs = conv_layers(specs)
    if len(widths) != len(convs):
        raise ValueError(f"{len(widths)} weight bit widths for {len(convs)} convs")
    return [c.name for c, bits in zip(convs, widths, strict=True) if bits == 4]


def int4_step_layers(specs: Sequence[LayerSpec], widths: Sequence[int]) -> list[str]:
    """The convs of `int4_kernel_layers` that are a ``qanas_*_s4`` step of their own in an
    ``--optimise speed`` build, in order: those not in `fused_convs` (the others run
    inside a ``qanas_inverted_residual_s8`` step)."""
    fused = fused_convs(specs)
    return [name for name in int4_kernel_layers(specs, widths) if name not in fused]


def stored_weight_bytes(specs: Sequence[LayerSpec], widths: Sequence[int]) -> list[int]:
    """Bytes the compiler stores for the weights of every conv of `specs` at `widths`:
    packed for the convs of `int4_kernel_layers`, one per weight for the others."""
    packed = set(int4_kernel_layers(specs, widths))
    return [weight_bytes(s, 4 if s.name in packed else 8) for s in conv_layers(specs)]


def weight_flash_saving(specs: Sequence[LayerSpec], bits: Sequence[int]) -> int:
    """Bytes of weights the compiler stores less than for int8 with `bits` (one width per
    conv of `specs`)."""
    int8 = sum(weight_bytes(s, 8) for s in conv_layers(specs))
    return int8 - sum(stored_weight_bytes(specs, bits))


__all__ = ["WEIGHT_BIT_CHOICES", "conv_layers", "fused_blocks", "fused_convs",
           "int4_kernel_layers", "int4_step_layers", "layer_bit_widths", "packs_int4",
           "searchable_layers", "stored_weight_bytes", "weight_bytes", "weight_flash_saving"]
