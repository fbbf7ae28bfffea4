"""Which weight layers of a subnet may take fewer weight bits, and what their weights cost.

Mixed precision (docs/mixed-precision.md) chooses 4 or 8 weight bits per conv layer.
The first conv (the stem, which sees the raw image) and the classifiers (the convs
that write the class logits: ``out_channels == num_classes``) stay int8: they hold
few weights and carry most of the quantization error. Every other conv is
*searchable*.

Conv layers are taken in definition order, which `SearchSpace.layer_specs` and the
extracted subnet's ``named_modules()`` share (`tests/test_bits_space.py` checks it on
every space), so a bit width chosen from the layer descriptors names the same layer
of the model.

Flash follows the compiler's storage: 4-bit weights packed two per byte (a layer's
last byte half-used when its weight count is odd), an int32 bias and the
per-channel requantization parameters as for int8.

Example:
    >>> from targets.cost import LayerSpec
    >>> stem = LayerSpec("conv", "stem", 3, 16, (8, 8), (4, 4), kernel=(3, 3))
    >>> body = LayerSpec("conv", "b", 16, 32, (4, 4), (4, 4))
    >>> head = LayerSpec("conv", "cls", 32, 4, (4, 4), (4, 4))
    >>> searchable_layers([stem, body, head], num_classes=4)
    [1]
    >>> weight_bytes(body, 4), weight_bytes(body, 8)
    (256, 512)
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

from targets.cost import LayerSpec

WEIGHT_BIT_CHOICES = (8, 4)
"""The weight bit widths a searchable layer chooses from (int8 first: the default)."""


def conv_layers(specs: Sequence[LayerSpec]) -> list[LayerSpec]:
    """The conv descriptors of `specs`, in order."""
    return [s for s in specs if s.op == "conv"]


def searchable_layers(specs: Sequence[LayerSpec], num_classes: int) -> list[int]:
    """Indices (into `conv_layers(specs)`) of the convs whose weight bits are searched."""
    convs = conv_layers(specs)
    return [i for i, s in enumerate(convs) if i > 0 and s.out_channels != num_classes]


def conv_module_names(model: nn.Module) -> list[str]:
    """Names of the `nn.Conv2d` modules of `model`, in definition order (`conv_layers`'s)."""
    return [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def weight_bytes(spec: LayerSpec, bits: int) -> int:
    """Bytes of the weights of one conv at `bits` (4: two per byte, rounded up; 8: one)."""
    kh, kw = spec.kernel
    count = kh * kw * (spec.in_channels // spec.groups) * spec.out_channels
    return -(-count * bits // 8)


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


def weight_flash_saving(specs: Sequence[LayerSpec], bits: Sequence[int]) -> int:
    """Bytes of weights saved against int8 by `bits` (one width per conv of `specs`)."""
    convs = conv_layers(specs)
    return sum(weight_bytes(s, 8) - weight_bytes(s, b) for s, b in zip(convs, bits, strict=True))


__all__ = ["WEIGHT_BIT_CHOICES", "conv_layers", "conv_module_names", "layer_bit_widths",
           "searchable_layers", "weight_bytes", "weight_flash_saving"]
