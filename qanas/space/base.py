"""Search-space vocabulary: decisions, `SubnetConfig` and the `SearchSpace` base class.

A search space is an ordered tuple of `Decision`s, each a small set of labelled
options (a kernel/expansion choice of one layer, a dilation, a decoder type...).
A subnet is one option index per decision: `SubnetConfig(space, choices)`. That
one representation serves every consumer:

* the compact string form for logs and the CLI, e.g.
  ``mbv2-deeplab:k3e6_k5e4_skip_..._aspp6``;
* integer vectors for pymoo (`encode` / `decode`, bounds from `upper_bounds`);
* FairNAS, which permutes the options of each decision independently.

Spaces with constraints between decisions (a stage must keep one layer) either
make invalid combinations unrepresentable or implement `is_valid`/`repair`.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from qanas.errors import ConfigError
from targets.registry import Registry

if TYPE_CHECKING:  # pragma: no cover
    from targets.cost import LayerSpec

TOKEN_SEP = "_"
SPACE_SEP = ":"


@dataclass(frozen=True)
class Decision:
    """One searchable choice: a name and its option labels (no '_' or ':' in labels)."""

    name: str
    options: tuple[str, ...]

    def __post_init__(self):
        if not self.options:
            raise ValueError(f"decision {self.name!r} has no options")
        for label in self.options:
            if TOKEN_SEP in label or SPACE_SEP in label or not label:
                raise ValueError(f"option label {label!r} of {self.name!r} is not a valid token")
        if len(set(self.options)) != len(self.options):
            raise ValueError(f"decision {self.name!r} repeats an option: {self.options}")

    @property
    def size(self) -> int:
        """Number of options."""
        return len(self.options)


@dataclass(frozen=True)
class SubnetConfig:
    """One architecture of a search space: an option index per decision.

    Example:
        >>> cfg = SubnetConfig.from_str("mbv2-deeplab:" + "_".join(labels))  # doctest: +SKIP
        >>> cfg.to_str()  # doctest: +SKIP
    """

    space: str
    choices: tuple[int, ...]

    def __post_init__(self):
        object.__setattr__(self, "choices", tuple(int(c) for c in self.choices))

    @property
    def search_space(self) -> SearchSpace:
        """The registered `SearchSpace` this config belongs to."""
        return SPACES.get(self.space)

    def labels(self) -> tuple[str, ...]:
        """The option label chosen for each decision."""
        space = self.search_space
        return tuple(d.options[c] for d, c in zip(space.decisions, self.choices, strict=True))

    def label(self, decision_name: str) -> str:
        """The option label chosen for the decision called `decision_name`."""
        space = self.search_space
        return space.decisions[space.index(decision_name)].options[self.choices[space.index(decision_name)]]

    def to_str(self) -> str:
        """Compact form `space:label_label_...`, stable across versions of a space."""
        return self.space + SPACE_SEP + TOKEN_SEP.join(self.labels())

    @classmethod
    def from_str(cls, text: str) -> SubnetConfig:
        """Parses `to_str` output; raises `ConfigError` naming the bad token."""
        if SPACE_SEP not in text:
            raise ConfigError(
                f"architecture string {text!r} has no space prefix; expected "
                f"'<space>:<label>_<label>_...', e.g. from `qanas eval --subnet max --json`"
            )
        space_name, body = text.split(SPACE_SEP, 1)
        space = SPACES.get(space_name)
        tokens = body.split(TOKEN_SEP) if body else []
        if len(tokens) != len(space.decisions):
            raise ConfigError(
                f"architecture string for {space_name!r} has {len(tokens)} tokens, "
                f"the space has {len(space.decisions)} decisions"
            )
        choices = []
        for decision, token in zip(space.decisions, tokens, strict=True):
            if token not in decision.options:
                raise ConfigError(
                    f"{token!r} is not an option of {decision.name!r} in {space_name!r}; "
                    f"options: {', '.join(decision.options)}"
                )
            choices.append(decision.options.index(token))
        cfg = cls(space_name, tuple(choices))
        space.validate(cfg)
        return cfg

    def to_dict(self) -> dict:
        """JSON-friendly form."""
        return {"space": self.space, "arch": self.to_str()}

    @classmethod
    def from_dict(cls, data: dict) -> SubnetConfig:
        """Inverse of `to_dict`; rejects unknown keys."""
        unknown = set(data) - {"space", "arch"}
        if unknown:
            raise ConfigError(f"unknown SubnetConfig keys: {sorted(unknown)}")
        return cls.from_str(data["arch"])

    def __str__(self) -> str:
        return self.to_str()


@dataclass(frozen=True)
class BlockShape:
    """Where searchable block `index` sits at one input size, whatever the other choices are.

    Attributes:
        index: the block's decision index.
        in_channels, in_hw: its input (channels, (H, W)).
        out_channels, stride: its output channels and stride.
    """

    index: int
    in_channels: int
    in_hw: tuple[int, int]
    out_channels: int
    stride: int


class SearchSpace(ABC):
    """Base class of search spaces. Subclasses set `name` and `decisions`.

    Subclasses implement `layer_specs`, and override `is_valid` / `repair` when some
    combinations of options are invalid. A space only describes networks; the modules
    that hold their weights are built by the supernet registered for the space's class
    (`qanas.supernet.build_supernet`).
    """

    name: str
    decisions: tuple[Decision, ...]

    # -- structure -----------------------------------------------------------------
    def index(self, decision_name: str) -> int:
        """Position of the decision called `decision_name`."""
        for i, d in enumerate(self.decisions):
            if d.name == decision_name:
                return i
        raise ConfigError(f"{self.name!r} has no decision {decision_name!r}")

    @property
    def upper_bounds(self) -> np.ndarray:
        """Largest option index per decision (pymoo `xu`; `xl` is all zeros)."""
        return np.array([d.size - 1 for d in self.decisions], dtype=np.int64)

    @property
    def cardinality(self) -> int:
        """Number of distinct valid subnets (product of option counts unless overridden)."""
        return math.prod(d.size for d in self.decisions)

    # -- validity ------------------------------------------------------------------
    def is_valid(self, cfg: SubnetConfig) -> bool:
        """True when `cfg` is a buildable subnet of this space."""
        return cfg.space == self.name and len(cfg.choices) == len(self.decisions) and all(
            0 <= c < d.size for c, d in zip(cfg.choices, self.decisions, strict=True)
        )

    def validate(self, cfg: SubnetConfig) -> None:
        """Raises `ConfigError` if `cfg` is not valid in this space."""
        if not self.is_valid(cfg):
            raise ConfigError(f"{cfg.choices} is not a valid subnet of {self.name!r}")

    def repair(self, choices: Sequence[int]) -> tuple[int, ...]:
        """Maps any in-bounds vector to a valid one (identity unless overridden)."""
        return tuple(int(c) for c in choices)

    def coupled_decisions(self) -> tuple[tuple[int, ...], ...]:
        """Groups of decision indices whose options constrain each other (none by default).

        Every invalid combination must be invalid within one group, judged by
        `group_is_valid`; a path sampler can then draw each group's options jointly
        (rejecting invalid rows) instead of repairing afterwards, which would bias the
        options a repair forces.
        """
        return ()

    def group_is_valid(self, group: tuple[int, ...], picks: Sequence[int]) -> bool:
        """Whether options ``picks`` of the decisions in ``group`` may be combined."""
        return True

    # -- vectors for pymoo -------------------------------------------------------------
    def encode(self, cfg: SubnetConfig) -> np.ndarray:
        """Integer vector of option indices."""
        self.validate(cfg)
        return np.asarray(cfg.choices, dtype=np.int64)

    def decode(self, vector: Sequence[int] | np.ndarray) -> SubnetConfig:
        """Rounds, clips to bounds, repairs and returns the `SubnetConfig`."""
        vec = np.clip(np.rint(np.asarray(vector, dtype=np.float64)), 0, self.upper_bounds)
        cfg = SubnetConfig(self.name, self.repair(vec.astype(np.int64)))
        self.validate(cfg)
        return cfg

    # -- sampling and landmarks ----------------------------------------------------------
    def sample(self, rng: np.random.Generator) -> SubnetConfig:
        """A subnet drawn uniformly per decision, then repaired."""
        vec = [int(rng.integers(d.size)) for d in self.decisions]
        return self.decode(vec)

    @abstractmethod
    def max_config(self) -> SubnetConfig:
        """The largest subnet (most compute)."""

    @abstractmethod
    def min_config(self) -> SubnetConfig:
        """The smallest subnet (least compute)."""

    @abstractmethod
    def seed_config(self) -> SubnetConfig:
        """The hand-designed reference network of the space (e.g. plain MobileNetV2)."""

    def resolve(self, text: str, rng: np.random.Generator | None = None) -> SubnetConfig:
        """Parses `max`, `min`, `seed`, `random:SEED` or an architecture string."""
        if text == "max":
            return self.max_config()
        if text == "min":
            return self.min_config()
        if text == "seed":
            return self.seed_config()
        if text.startswith("random:"):
            try:
                seed = int(text.split(":", 1)[1])
            except ValueError:
                raise ConfigError(f"{text!r}: expected random:<integer seed>") from None
            return self.sample(np.random.default_rng(seed))
        if SPACE_SEP not in text:
            text = f"{self.name}{SPACE_SEP}{text}"
        cfg = SubnetConfig.from_str(text)
        if cfg.space != self.name:
            raise ConfigError(f"{text!r} belongs to space {cfg.space!r}, not {self.name!r}")
        return cfg

    # -- models and costs -----------------------------------------------------------------
    def gate_units(self, cfg: SubnetConfig) -> dict[str, Hashable] | None:
        """Gateable unit of the supernet (a module name) → what `cfg` configures it to; a unit
        absent from the dict does not run in `cfg`. What differentiable search gates
        (`qanas.search.gumbel.gates`); None (the default): the space declares no units."""
        return None

    def block_shapes(self, image_size: tuple[int, int]) -> list[BlockShape] | None:
        """Input and output shape of every searchable block at `image_size`, when they do not
        depend on the other decisions (what a per-block latency table is keyed by); None
        (the default) for spaces whose block shapes do."""
        return None

    @property
    def supernet_space(self) -> SearchSpace:
        """The space whose supernet holds this space's weights: the space itself, unless it
        narrows or annotates another one (`RestrictedSpace`, `WeightBitsSpace`)."""
        return self

    @abstractmethod
    def layer_specs(self, cfg: SubnetConfig, image_size: tuple[int, int]) -> list[LayerSpec]:
        """The subnet's layers as plain descriptors, for analytic cost models."""


SPACES: Registry[SearchSpace] = Registry("search space")


def register_space(space: SearchSpace) -> SearchSpace:
    """Registers a search-space instance under `space.name`."""
    return SPACES.register(space.name, space)
