"""A search space with some options of some decisions removed (`RestrictedSpace`).

Subnets keep the base space's name and option indices, so architecture strings,
the archive, the supernet and the hardware models see ordinary subnets of the base
space. Only the integer vectors pymoo works on change: decision ``i`` has
``len(allowed[i])`` options, and `decode` maps them back to the base indices.

Example:
    >>> base = get_space("mbv2-deeplab")  # doctest: +SKIP
    >>> space = RestrictedSpace(base, {"head": ("aspp6", "lraspp")})  # doctest: +SKIP
    >>> space.sample(np.random.default_rng(0)).label("head") != "aspp12"  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

from qanas.errors import ConfigError
from qanas.space.base import Decision, SearchSpace, SubnetConfig


class RestrictedSpace(SearchSpace):
    """`base` with only the `allowed` option labels of the named decisions.

    Args:
        base: the registered search space.
        allowed: decision name → the option labels that stay (others keep all options).

    Raises:
        ConfigError: an unknown decision or label, or a decision left with no option.
    """

    def __init__(self, base: SearchSpace, allowed: Mapping[str, Sequence[str]]):
        self.base = base
        self.name = base.name
        unknown = set(allowed) - {d.name for d in base.decisions}
        if unknown:
            raise ConfigError(f"{base.name} has no decision {sorted(unknown)}")
        self._index: list[tuple[int, ...]] = []  # per decision: restricted → base index
        decisions = []
        for d in base.decisions:
            keep = tuple(allowed.get(d.name, d.options))
            bad = [o for o in keep if o not in d.options]
            if bad:
                raise ConfigError(f"{bad} are not options of {d.name!r}; it has {d.options}")
            if not keep:
                raise ConfigError(f"every option of {d.name!r} in {base.name} was removed; "
                                  "the space has no subnet for this target")
            ordered = tuple(o for o in d.options if o in keep)
            self._index.append(tuple(d.options.index(o) for o in ordered))
            decisions.append(Decision(d.name, ordered))
        self.decisions = tuple(decisions)

    @property
    def removed(self) -> dict[str, tuple[str, ...]]:
        """Decision name → the labels this space removes (only decisions that lost some)."""
        out = {}
        for d, r in zip(self.base.decisions, self.decisions, strict=True):
            gone = tuple(o for o in d.options if o not in r.options)
            if gone:
                out[d.name] = gone
        return out

    @property
    def cardinality(self) -> int:
        """Product of the remaining option counts (the base's own constraints aside)."""
        return math.prod(d.size for d in self.decisions)

    def allows(self, cfg: SubnetConfig) -> bool:
        """True when `cfg` uses no removed option."""
        return all(c in idx for c, idx in zip(cfg.choices, self._index, strict=True))

    def is_valid(self, cfg: SubnetConfig) -> bool:
        """A valid subnet of the base space that uses no removed option."""
        return self.base.is_valid(cfg) and self.allows(cfg)

    def encode(self, cfg: SubnetConfig) -> np.ndarray:
        """Restricted option indices of `cfg`."""
        self.validate(cfg)
        return np.array([idx.index(c) for c, idx in zip(cfg.choices, self._index, strict=True)],
                        dtype=np.int64)

    def decode(self, vector: Sequence[int] | np.ndarray) -> SubnetConfig:
        """Rounds and clips a restricted vector, maps it to base indices, repairs, validates.

        When the base space's `repair` turns a choice into a removed option, that choice
        goes to the nearest allowed index and the base repairs once more.
        """
        vec = np.clip(np.rint(np.asarray(vector, dtype=np.float64)), 0, self.upper_bounds)
        choices = [idx[int(v)] for v, idx in zip(vec, self._index, strict=True)]
        for _ in range(2):
            choices = list(self.base.repair(choices))
            if self.allows(SubnetConfig(self.name, tuple(choices))):
                break
            choices = [c if c in idx else min(idx, key=lambda i, c=c: abs(i - c))
                       for c, idx in zip(choices, self._index, strict=True)]
        cfg = SubnetConfig(self.name, tuple(choices))
        self.validate(cfg)
        return cfg

    def max_config(self) -> SubnetConfig:
        """The base's largest subnet with removed choices moved to the nearest allowed one."""
        return self._project(self.base.max_config())

    def min_config(self) -> SubnetConfig:
        """The base's smallest subnet, projected like `max_config`."""
        return self._project(self.base.min_config())

    def seed_config(self) -> SubnetConfig:
        """The base's reference network, projected like `max_config`."""
        return self._project(self.base.seed_config())

    def _project(self, cfg: SubnetConfig) -> SubnetConfig:
        if self.allows(cfg):
            return cfg
        return self.decode([idx.index(min(idx, key=lambda i, c=c: abs(i - c)))
                            for c, idx in zip(cfg.choices, self._index, strict=True)])

    @property
    def supernet_space(self) -> SearchSpace:
        """The base space's supernet space (it covers every subnet of this space)."""
        return self.base.supernet_space

    def layer_specs(self, cfg: SubnetConfig, image_size: tuple[int, int], *args, **kwargs):
        """The base space's layer descriptors of `cfg`."""
        return self.base.layer_specs(cfg, image_size, *args, **kwargs)

    def __getattr__(self, name: str):
        # Anything else a space offers (num_classes, stage plans...) is the base's.
        if name == "base":
            raise AttributeError(name)
        return getattr(self.base, name)
