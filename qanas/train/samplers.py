"""Path samplers for single-path supernet training: FairNAS (strict fairness) and SPOS.

A sampler turns its own `np.random.Generator` into the subnets trained at each
optimizer step (`next_paths()`), and counts, per decision and option, how often
each option was actually trained. Its state (generator, counts, step) is part of
every checkpoint so that `--resume` replays the same paths.

**FairNAS strict fairness** (Chu et al., 2019). Let m be the largest option
count among the decisions. At each step every decision gets a sequence of m
picks, and path k uses pick k of every decision:

* a decision with c == m options uses a random permutation of its options, so
  every option is trained exactly once per step;
* a decision with c < m options repeats each option ⌊m/c⌋ times and adds
  m mod c extra picks drawn uniformly *without replacement*, then shuffles.
  Every option is trained ⌊m/c⌋ or ⌈m/c⌉ times per step, and since the extra
  picks are uniform, no option is favoured in expectation.

Spaces with invalid combinations: decisions that constrain each other
(`space.coupled_decisions()`, e.g. "keep at least one layer of a stage") are drawn
jointly: each column is still a fair sequence, and a group's columns are redrawn
until every path's picks are valid (`space.group_is_valid`), so the per-step counts
above hold exactly and no option is favoured by a repair. Each path vector then
goes through `space.decode`, which may still `repair` constraints the space does
not declare as coupled; the counts record the decoded (actually trained) configs,
so such a repair shows up in `counts` instead of being hidden.

**SPOS** (Guo et al., 2019) trains one path per step, drawn uniformly per
decision by `space.sample` (then repaired): the uniform baseline.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from qanas.errors import CheckpointError
from qanas.space.base import SearchSpace, SubnetConfig
from targets.registry import Registry

MAX_GROUP_DRAWS = 10_000
"""Redraws of one coupled group before `FairNASSampler` gives up (a space bug)."""


class PathSampler(ABC):
    """Chooses the subnets trained at each optimizer step.

    Attributes:
        space: the search space sampled from.
        rng: the sampler's own generator (seeded from `seed`).
        counts: per decision, an int64 array counting how often each option was trained.
        step: number of `next_paths()` calls so far.
    """

    name: str = ""

    def __init__(self, space: SearchSpace, seed: int):
        self.space = space
        self.rng = np.random.default_rng(seed)
        self.counts = [np.zeros(d.size, dtype=np.int64) for d in space.decisions]
        self.step = 0

    @property
    @abstractmethod
    def paths_per_step(self) -> int:
        """Number of subnets `next_paths()` returns (gradients are accumulated over them)."""

    @abstractmethod
    def _draw(self) -> list[np.ndarray]:
        """The raw option-index vectors of one step (before `space.decode`)."""

    def next_paths(self) -> list[SubnetConfig]:
        """The subnets to train at the next optimizer step (decoded; counts updated)."""
        configs = [self.space.decode(vec) for vec in self._draw()]
        for cfg in configs:
            # the space's own indices: a wrapped space (restricted options, weight bits)
            # counts every decision it samples, not only the architecture's
            for i, choice in enumerate(self.space.encode(cfg)):
                self.counts[i][choice] += 1
        self.step += 1
        return configs

    def state_dict(self) -> dict[str, Any]:
        """Generator state, counts and step: plain Python types (checkpoint-safe)."""
        return {
            "name": self.name,
            "rng": _plain(self.rng.bit_generator.state),
            "counts": [c.tolist() for c in self.counts],
            "step": self.step,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores `state_dict()` output; raises `CheckpointError` on a mismatch."""
        if state.get("name") != self.name:
            raise CheckpointError(
                f"the checkpoint's path sampler is {state.get('name')!r}, this run uses "
                f"{self.name!r}; resume with the sampler it was trained with"
            )
        counts = state["counts"]
        if [len(c) for c in counts] != [d.size for d in self.space.decisions]:
            raise CheckpointError(
                f"the checkpoint's sampler counts do not match the decisions of space "
                f"{self.space.name!r}; the space changed since training, retrain the supernet"
            )
        self.rng.bit_generator.state = state["rng"]
        self.counts = [np.asarray(c, dtype=np.int64) for c in counts]
        self.step = int(state["step"])


class FairNASSampler(PathSampler):
    """Strict fairness: m paths per step covering every option of every decision.

    Example:
        >>> sampler = FairNASSampler(get_space("squeezenas-small"), seed=0)  # doctest: +SKIP
        >>> len(sampler.next_paths()) == sampler.paths_per_step  # doctest: +SKIP
        True
    """

    name = "fairnas"

    @property
    def paths_per_step(self) -> int:
        """m, the largest option count of any decision."""
        return max(d.size for d in self.space.decisions)

    def _draw(self) -> list[np.ndarray]:
        m = self.paths_per_step
        decisions = self.space.decisions
        table = np.stack([fair_sequence(d.size, m, self.rng) for d in decisions], axis=1)
        for group in self.space.coupled_decisions():
            table[:, group] = self._valid_group_columns(group, m)
        return list(table)  # [m paths, decisions]

    def _valid_group_columns(self, group: tuple[int, ...], m: int) -> np.ndarray:
        """Fair columns for the decisions of ``group`` whose every row is valid."""
        for _ in range(MAX_GROUP_DRAWS):
            columns = np.stack([fair_sequence(self.space.decisions[i].size, m, self.rng)
                                for i in group], axis=1)
            if all(self.space.group_is_valid(group, row) for row in columns):
                return columns
        names = [self.space.decisions[i].name for i in group]
        raise RuntimeError(
            f"no fair draw of the coupled decisions {names} of space {self.space.name!r} "
            f"gave {m} valid paths in {MAX_GROUP_DRAWS} tries: the space's constraint "
            f"cannot be met with strict fairness")


class SPOSSampler(PathSampler):
    """Single-path one-shot: one path per step, uniform per decision."""

    name = "spos"

    @property
    def paths_per_step(self) -> int:
        """Always 1."""
        return 1

    def _draw(self) -> list[np.ndarray]:
        return [np.array([self.rng.integers(d.size) for d in self.space.decisions],
                         dtype=np.int64)]


def fair_sequence(num_options: int, length: int, rng: np.random.Generator) -> np.ndarray:
    """`length` picks among `num_options` options, each used ⌊length/c⌋ or ⌈length/c⌉ times.

    The `length mod c` extra picks are drawn uniformly without replacement and
    the sequence is shuffled, so every option has the same expected count.

    Args:
        num_options: c, the number of options (>= 1).
        length: m, the number of picks (>= c for FairNAS, but any length works).
        rng: the generator drawing extras and the permutation.

    Returns:
        An int64 array of option indices of size `length`.
    """
    base = np.repeat(np.arange(num_options, dtype=np.int64), length // num_options)
    extra = rng.choice(num_options, size=length % num_options, replace=False).astype(np.int64)
    return rng.permutation(np.concatenate([base, extra]))


SAMPLERS: Registry[type[PathSampler]] = Registry("path sampler")
SAMPLERS.register(FairNASSampler.name, FairNASSampler)
SAMPLERS.register(SPOSSampler.name, SPOSSampler)


def build_sampler(name: str, space: SearchSpace, seed: int) -> PathSampler:
    """The registered sampler `name` ("fairnas" or "spos") over `space`, seeded with `seed`."""
    return SAMPLERS.get(name)(space, seed)


def _plain(obj: Any) -> Any:
    """Converts numpy scalars/arrays inside a generator state to Python types."""
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.integer):
        return int(obj)
    return obj
