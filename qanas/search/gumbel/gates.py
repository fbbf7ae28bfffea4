"""Straight-through gates for differentiable search: which module each decision scales.

GDAS-style single-path search runs only the sampled subnet, so the gradient has
to reach the architecture logits through the sampled path itself: every module
the sampled choice of a decision configures has its output multiplied by that
choice's straight-through weight ``w`` (1 in the forward pass, ``∂/∂logits`` of the
relaxed sample in the backward pass). For residual modules only the residual
branch is scaled, ``x + w · (f(x) − x)``, so the identity path stays unscaled
(an identity ``skip`` therefore passes no gradient: it is the "zero" branch).

Which decision configures which module is found, not listed per space: a space
adapter names the gateable *units* of the supernet (SqueezeNAS: each
`ChoiceBlock`; MobileNetV2 spaces: each `features.i` block and the active head)
and gives each unit a *descriptor* for a config (the chosen candidate, the
`ActiveBlock` settings, the head and its rates). Decision ``j`` gates unit ``u``
in config ``c`` when changing ``j`` alone (then repairing) changes ``u``'s
descriptor. That covers kernel/expansion choices, skips and keep/drop (the block
appears or disappears), strides and dilations (the block's settings change) and
the head choice, for every registered space, with no per-space table to keep in
sync. A decision that gates no unit at the seed or the max config cannot be
relaxed; `relaxable_decisions` reports it and the search keeps it at the seed.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache

import torch
from torch import nn

from qanas.errors import ConfigError
from qanas.space.base import SearchSpace, SubnetConfig


# -- space adapters: units and their descriptors -------------------------------------------------
def unit_descriptors(space: SearchSpace, cfg: SubnetConfig) -> dict[str, Hashable]:
    """Gateable unit name → what `cfg` configures it to (absent: the unit does not run)."""
    units = space.gate_units(cfg)
    if units is None:
        raise ConfigError(_UNSUPPORTED.format(name=space.name))
    return units


def unit_modules(supernet: nn.Module) -> dict[str, nn.Module]:
    """Unit name → module of `supernet` whose output the unit's gate scales."""
    modules = supernet.gate_modules()
    if modules is None:
        raise ConfigError(_UNSUPPORTED.format(name=supernet.space.name))
    return modules


_UNSUPPORTED = ("gumbel search gates the units a space declares; {name!r} declares none "
                "(`SearchSpace.gate_units` and `Supernet.gate_modules`): add them, or search "
                "it with --algo nsga2")


def _is_residual(module: nn.Module) -> bool:
    """True when `module` computes ``x + f(x)`` (or is the identity) in its current setting."""
    if hasattr(module, "candidates") and hasattr(module, "active"):  # ChoiceBlock
        module = module.candidates[module.active]
    return isinstance(module, nn.Identity) or bool(getattr(module, "use_res", False)) or bool(
        getattr(module, "use_residual", False))


# -- decision → unit dependency ---------------------------------------------------------------
@lru_cache(maxsize=4096)
def _gating_cached(space_name: str, choices: tuple[int, ...]) -> tuple[tuple[str, tuple[int, ...]], ...]:
    from qanas.space import get_space

    space = get_space(space_name)
    cfg = SubnetConfig(space_name, choices)
    base = unit_descriptors(space, cfg)
    gates: dict[str, list[int]] = {u: [] for u in base}
    for j, decision in enumerate(space.decisions):
        for option in range(decision.size):
            if option == choices[j]:
                continue
            vec = list(choices)
            vec[j] = option
            other = unit_descriptors(space, space.decode(vec))
            for unit, desc in base.items():
                if other.get(unit, _ABSENT) != desc and j not in gates[unit]:
                    gates[unit].append(j)
    return tuple((u, tuple(js)) for u, js in gates.items())


_ABSENT = object()


def gating(space: SearchSpace, cfg: SubnetConfig) -> dict[str, tuple[int, ...]]:
    """Running unit → indices of the decisions that configure it in `cfg` (cached per config)."""
    space.validate(cfg)
    return dict(_gating_cached(space.name, cfg.choices))


def relaxable_decisions(space: SearchSpace) -> tuple[bool, ...]:
    """Per decision: True when it gates some unit at the seed or the max config."""
    used: set[int] = set()
    for cfg in (space.seed_config(), space.max_config()):
        for decisions in gating(space, cfg).values():
            used.update(decisions)
    return tuple(j in used for j in range(len(space.decisions)))


# -- the hooks --------------------------------------------------------------------------------
class GateHooks:
    """Forward hooks on a supernet's units applying the gates set by `apply`.

    Args:
        supernet: a supernet of a supported space (its weights are not modified).

    Example:
        >>> hooks = GateHooks(supernet)  # doctest: +SKIP
        >>> with hooks.attached():  # doctest: +SKIP
        ...     hooks.apply(cfg, weights)  # weights[j]: straight-through weight of decision j
        ...     logits = supernet(images)
    """

    def __init__(self, supernet: nn.Module):
        self.supernet = supernet
        self.space = supernet.space
        self.modules = unit_modules(supernet)
        self._gates: dict[int, torch.Tensor] = {}

    def apply(self, cfg: SubnetConfig, weights: Sequence[torch.Tensor | None]) -> dict[str, tuple[int, ...]]:
        """Activates `cfg` and sets each running unit's gate to the product of its decisions' weights.

        Args:
            cfg: the sampled (repaired) subnet.
            weights: per decision, the scalar straight-through weight of its chosen option,
                or None for a decision kept fixed (it does not scale anything).

        Returns:
            The gating map of `cfg` (unit → decisions).
        """
        self.supernet.set_active(cfg)
        gates = gating(self.space, cfg)
        self._gates.clear()
        for unit, decisions in gates.items():
            factors = [weights[j] for j in decisions if weights[j] is not None]
            if factors:
                gate = factors[0]
                for f in factors[1:]:
                    gate = gate * f
                self._gates[id(self.modules[unit])] = gate
        return gates

    def clear(self) -> None:
        """Removes every gate (the supernet runs unscaled)."""
        self._gates.clear()

    def _hook(self, module: nn.Module, args: tuple, output: torch.Tensor) -> torch.Tensor | None:
        gate = self._gates.get(id(module))
        if gate is None:
            return None
        if _is_residual(module):
            x = args[0]
            return x + gate * (output - x)
        return gate * output

    @contextmanager
    def attached(self) -> Iterator[GateHooks]:
        """Registers the hooks for the duration of the block, then removes them."""
        handles = [m.register_forward_hook(self._hook) for m in self.modules.values()]
        try:
            yield self
        finally:
            for h in handles:
                h.remove()
            self.clear()
