"""The `Supernet` interface shared by every search space (Once-for-All vocabulary).

A supernet holds the weights of every subnet of its space. `set_active(cfg)`
selects one path; `forward` then runs exactly that subnet. `extract(cfg)`
returns a static `nn.Module` with the weights copied out, whose output equals
the supernet path's output for the same input (a tested invariant).
"""

from __future__ import annotations

from abc import abstractmethod

import torch
from torch import nn

from qanas.space.base import SearchSpace, SubnetConfig


class Supernet(nn.Module):
    """Weight-sharing supernet over a `SearchSpace`.

    Subclasses build their modules in `__init__`, implement `set_active`,
    `forward` and `extract`, and start with `max_config` active.
    """

    def gate_modules(self) -> dict[str, nn.Module] | None:
        """Unit name of `SearchSpace.gate_units` → the module whose output its gate scales;
        None (the default): no units."""
        return None

    def __init__(self, space: SearchSpace, num_classes: int):
        super().__init__()
        self.space = space
        self.num_classes = num_classes
        self._active: SubnetConfig | None = None

    @property
    def active(self) -> SubnetConfig:
        """The currently active subnet."""
        if self._active is None:
            raise RuntimeError("no active subnet; call set_active(cfg) first")
        return self._active

    def set_active(self, cfg: SubnetConfig) -> None:
        """Activates the path of `cfg` for the following forward passes."""
        self.space.validate(cfg)
        self._active = cfg
        self._apply_active(cfg)

    @abstractmethod
    def _apply_active(self, cfg: SubnetConfig) -> None:
        """Configures the dynamic modules for `cfg` (already validated)."""

    @abstractmethod
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (N, num_classes, H, W) at the input resolution for the active subnet."""

    @abstractmethod
    def extract(self, cfg: SubnetConfig) -> nn.Module:
        """A static module for `cfg` with copied weights (preserve_weight semantics)."""

    def extract_shared(self, cfg: SubnetConfig) -> nn.Module:
        """A static module for `cfg` that may hold the supernet's own modules (no copy).

        For callers that only read the subnet (`qanas.quant.quantize_fast`, which folds
        copies of the weights, and the in-memory QDQ export): it must not be trained,
        recalibrated or switched between train and eval mode. The default copies, as
        `extract`; a supernet whose subnets are made of whole modules of its own
        (SqueezeNAS's candidates) skips the copy.
        """
        return self.extract(cfg)
