"""Per-layer weight bits on a model: conv module names and the bits of a mixed subnet.

Which convs are searchable and what their weights cost is `qanas.space.layer_bits` (layer
descriptors only); this module maps those choices onto an extracted model's conv modules,
which `SearchSpace.layer_specs` lists in the same definition order
(`tests/qanas/space/test_bits_space.py` checks it on every space).
"""

from __future__ import annotations

from torch import nn

from qanas.errors import ConfigError
from qanas.space.bits import WeightBitsSpace, arch_of, searched_bits
from qanas.space.layer_bits import layer_bit_widths


def conv_module_names(model: nn.Module) -> list[str]:
    """Names of the `nn.Conv2d` modules of `model`, in definition order (`conv_layers`'s)."""
    return [name for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]


def layer_weight_bits(cfg, subnet, space: WeightBitsSpace) -> tuple[tuple[str, int], ...]:
    """(conv module name, bits) of the 4-bit convs of `cfg` in its extracted `subnet`."""
    bits = searched_bits(cfg)
    if bits is None:
        return ()
    specs = space.layer_specs(arch_of(cfg), space.image_size, space.num_classes)
    widths = layer_bit_widths(specs, space.num_classes, bits)
    names = conv_module_names(subnet)
    if len(names) != len(widths):
        raise ConfigError(f"{cfg.to_str()}: the subnet has {len(names)} convs, its layer "
                          f"descriptors {len(widths)}; the space's layer_specs must list every "
                          "conv of the extracted subnet, in definition order")
    return tuple((n, b) for n, b in zip(names, widths, strict=True) if b != 8)


__all__ = ["conv_module_names", "layer_weight_bits"]
