"""Per-layer weight bit widths as search decisions, added to any space (`WeightBitsSpace`).

`WeightBitsSpace(base, image_size, num_classes)` searches (architecture, weight bits)
together: its decisions are the base space's, then one ``w<i>`` decision per slot
with options ``8`` and ``4``. Slot ``i`` is the i-th *searchable* conv of the subnet
(`qanas.space.layer_bits.searchable_layers`: every conv but the stem and the
classifiers); there are as many slots as the space's largest subnet has searchable
convs, and a subnet with fewer ignores the rest (they are set back to 8, so two
vectors that build the same network decode to the same config).

A config with some 4-bit layer is a `MixedPrecisionConfig`: the base space's
`SubnetConfig` (the same space name and choices, so the supernet, the cost models
and the latency tables see the architecture) plus ``weight_bits``, one width per
searchable conv. Its string is the architecture's with ``@w`` and one digit per
searchable conv appended (``squeezenas-small:k3e6g1_..._skip@w8448...``); an all-int8
config stays a plain `SubnetConfig` with the architecture's string, so archives of
int8 searches read and extend as before.

Example:
    >>> space = WeightBitsSpace(get_space("squeezenas-small"), (64, 128), 4)  # doctest: +SKIP
    >>> cfg = space.sample(np.random.default_rng(0))  # doctest: +SKIP
    >>> parse_config(cfg.to_str()) == cfg  # doctest: +SKIP
    True
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from qanas.errors import ConfigError
from qanas.space.base import Decision, SearchSpace, SubnetConfig

BITS_SEP = "@w"
BIT_OPTIONS = ("8", "4")
"""Options of a bit decision; index 0 (int8) is the default, so a zero vector is all int8."""


@dataclass(frozen=True)
class MixedPrecisionConfig(SubnetConfig):
    """An architecture with its searchable convs' weight bit widths (definition order)."""

    weight_bits: tuple[int, ...] = ()

    def __post_init__(self):
        super().__post_init__()
        object.__setattr__(self, "weight_bits", tuple(int(b) for b in self.weight_bits))
        bad = [b for b in self.weight_bits if str(b) not in BIT_OPTIONS]
        if bad:
            raise ConfigError(f"weight bit widths {bad} are not among {BIT_OPTIONS}")

    @property
    def arch(self) -> SubnetConfig:
        """The architecture alone."""
        return SubnetConfig(self.space, self.choices)

    def to_str(self) -> str:
        """The architecture's string, then ``@w`` and one digit per searchable conv."""
        return super().to_str() + BITS_SEP + "".join(str(b) for b in self.weight_bits)

    def to_dict(self) -> dict:
        """JSON-friendly form (the string carries the bits)."""
        return {"space": self.space, "arch": self.to_str()}

    def __str__(self) -> str:
        return self.to_str()


def arch_of(cfg: SubnetConfig) -> SubnetConfig:
    """The architecture of `cfg` (itself for a plain config)."""
    return cfg.arch if isinstance(cfg, MixedPrecisionConfig) else cfg


def searched_bits(cfg: SubnetConfig) -> tuple[int, ...] | None:
    """The searchable convs' weight bits of `cfg`; None for an all-int8 (plain) config."""
    return cfg.weight_bits if isinstance(cfg, MixedPrecisionConfig) else None


def with_bits(arch: SubnetConfig, bits: Sequence[int]) -> SubnetConfig:
    """`arch` with these weight bits: a `MixedPrecisionConfig`, or `arch` if all are 8."""
    bits = tuple(int(b) for b in bits)
    if all(b == 8 for b in bits):
        return arch
    return MixedPrecisionConfig(arch.space, arch.choices, bits)


def parse_config(text: str, space: SearchSpace | None = None) -> SubnetConfig:
    """Parses a plain or mixed-precision architecture string (``...@w8448``).

    The one parser of user-supplied and archived architecture strings (CLI, reports,
    checkpoints, demo). Without `space` the architecture part is a full
    ``space:label_...`` string; with `space` it is whatever `space.resolve` takes
    (``max``, ``seed``, ``random:N``, labels without the prefix), so ``seed@w84...``
    names the seed network with those bits.

    The number of digits is checked against the subnet's searchable convs when a
    `WeightBitsSpace` evaluates it (that needs the class count); here only the digits.

    Raises:
        ConfigError: a malformed architecture, or a digit other than 4 or 8.
    """
    arch_text, sep, digits = text.partition(BITS_SEP)
    arch = SubnetConfig.from_str(arch_text) if space is None else space.resolve(arch_text)
    if not sep:
        return arch
    if not digits or any(d not in BIT_OPTIONS for d in digits):
        raise ConfigError(f"{text!r}: after {BITS_SEP!r} expected one digit per searchable "
                          f"conv, each {' or '.join(BIT_OPTIONS)}; got {digits!r}")
    return with_bits(arch, [int(d) for d in digits])


class WeightBitsSpace(SearchSpace):
    """`base` with a 4/8-bit weight decision per searchable conv (see the module docstring).

    Args:
        base: the architecture space (a registered space, or a `RestrictedSpace`).
        image_size: the input (H, W) the layer descriptors are computed at.
        num_classes: the classifier width (classifier convs stay int8).
    """

    def __init__(self, base: SearchSpace, image_size: tuple[int, int], num_classes: int):
        from qanas.space.layer_bits import searchable_layers

        self.base = base
        self.name = base.name
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.num_classes = int(num_classes)
        self._searchable = searchable_layers
        self._slots_of: dict[tuple[int, ...], int] = {}
        landmarks = (base.max_config(), base.seed_config(), base.min_config())
        self.slots = max(self.slot_count(c) for c in landmarks)
        self.decisions = tuple(base.decisions) + tuple(
            Decision(f"w{i}", BIT_OPTIONS) for i in range(self.slots))

    def slot_count(self, arch: SubnetConfig) -> int:
        """Searchable convs of `arch` (cached per architecture)."""
        key = tuple(arch.choices)
        if key not in self._slots_of:
            specs = self.base.layer_specs(arch_of(arch), self.image_size, self.num_classes)
            self._slots_of[key] = len(self._searchable(specs, self.num_classes))
        return self._slots_of[key]

    @property
    def cardinality(self) -> int:
        """Architectures times bit assignments of the largest subnet (an upper bound)."""
        return self.base.cardinality * 2 ** self.slots

    def is_valid(self, cfg: SubnetConfig) -> bool:
        """A valid architecture of the base with one width per searchable conv (none if int8)."""
        arch = arch_of(cfg)
        if not self.base.is_valid(arch):
            return False
        bits = searched_bits(cfg)
        return bits is None or (len(bits) == self.slot_count(arch) <= self.slots)

    def validate(self, cfg: SubnetConfig) -> None:
        """Raises `ConfigError` naming the slot count when `cfg`'s bits do not fit its subnet."""
        arch = arch_of(cfg)
        self.base.validate(arch)
        bits = searched_bits(cfg)
        if bits is not None and len(bits) != self.slot_count(arch):
            raise ConfigError(f"{cfg.to_str()!r} gives {len(bits)} weight bit widths; this "
                              f"subnet has {self.slot_count(arch)} searchable convs (every conv "
                              "but the stem and the classifiers), one digit each")

    def encode(self, cfg: SubnetConfig) -> np.ndarray:
        """The base's vector, then one option index per slot (unused slots 0: int8)."""
        self.validate(cfg)
        arch = arch_of(cfg)
        slots = np.zeros(self.slots, dtype=np.int64)
        for i, b in enumerate(searched_bits(cfg) or ()):
            slots[i] = BIT_OPTIONS.index(str(b))
        return np.concatenate([self.base.encode(arch), slots])

    def decode(self, vector: Sequence[int] | np.ndarray) -> SubnetConfig:
        """Decodes the architecture with the base, then reads its searchable convs' bits."""
        vec = np.clip(np.rint(np.asarray(vector, dtype=np.float64)), 0, self.upper_bounds)
        n_arch = len(self.base.decisions)
        arch = self.base.decode(vec[:n_arch])
        used = vec[n_arch:n_arch + self.slot_count(arch)].astype(np.int64)
        cfg = with_bits(arch, [int(BIT_OPTIONS[i]) for i in used])
        self.validate(cfg)
        return cfg

    def max_config(self) -> SubnetConfig:
        """The base's largest subnet, all int8."""
        return self.base.max_config()

    def min_config(self) -> SubnetConfig:
        """The base's smallest subnet, all int8."""
        return self.base.min_config()

    def seed_config(self) -> SubnetConfig:
        """The base's reference network, all int8."""
        return self.base.seed_config()

    def resolve(self, text: str, rng: np.random.Generator | None = None) -> SubnetConfig:
        """The base's landmarks and strings, plus mixed-precision strings (``...@w84...``)."""
        if BITS_SEP not in text:
            return self.base.resolve(text, rng)
        cfg = parse_config(text, self.base)
        self.validate(cfg)
        return cfg

    @property
    def supernet_space(self) -> SearchSpace:
        """The base space's supernet space (bits change the quantization, not the weights)."""
        return self.base.supernet_space

    def layer_specs(self, cfg: SubnetConfig, image_size: tuple[int, int], *args, **kwargs):
        """The base space's layer descriptors of `cfg`'s architecture."""
        return self.base.layer_specs(arch_of(cfg), image_size, *args, **kwargs)

    def __getattr__(self, name: str):
        # Anything else a space offers (stage plans, block shapes...) is the base's.
        if name == "base":
            raise AttributeError(name)
        return getattr(self.base, name)


__all__ = ["BITS_SEP", "BIT_OPTIONS", "MixedPrecisionConfig", "WeightBitsSpace", "arch_of",
           "parse_config", "searched_bits", "with_bits"]
