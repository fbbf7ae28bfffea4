"""The memory-planner interface, the plan it returns, the lower bound and the budget check.

A planner maps each `BufferLifetime` to a byte offset in one arena so that two
buffers live at a common step never share a byte. Its quality is read against
the lower bound

    LB = max over steps s of  sum of aligned_size(b) for the buffers b live at s,

which no planner can beat: at the peak step all those buffers exist at once and
must be disjoint. ``MemoryPlan.ratio = arena_bytes / lower_bound_bytes`` is
therefore >= 1.0, and 1.0 means the plan is optimal. (LB is not always reachable:
placing buffers at fixed offsets across steps can force fragmentation; finding the
optimum is the NP-hard dynamic storage allocation problem.)

Every planner reserves `BufferLifetime.aligned_size` bytes per buffer and reports
``arena_bytes = max(offset + aligned_size)``; the arena itself must start at an
address aligned to ``MemoryPlan.arena_alignment`` (the largest buffer alignment).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import numpy as np

from compiler.errors import CompilerError, MemoryBudgetExceeded
from compiler.memory.buffer import DEFAULT_ALIGNMENT, BufferLifetime


class MemoryPlanError(CompilerError, ValueError):
    """A memory plan or its input is inconsistent (duplicate names, overlapping live buffers)."""


def _profile(
    first: np.ndarray, last: np.ndarray, size: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Live bytes at every step where some buffer starts (the maximum is at such a step)."""
    steps = np.unique(first)
    by_first = np.argsort(first, kind="stable")
    by_last = np.argsort(last, kind="stable")
    started = np.concatenate(([0], np.cumsum(size[by_first])))
    ended = np.concatenate(([0], np.cumsum(size[by_last])))
    n_started = np.searchsorted(first[by_first], steps, side="right")
    n_ended = np.searchsorted(last[by_last], steps, side="left")
    return steps, started[n_started] - ended[n_ended]


class PlanningProblem:
    """Buffers as arrays, shared by the strategies that plan them (internal to the planners).

    Attributes:
        buffers: the buffers, in the caller's order.
        first, last, size: numpy int64 arrays of lifetimes and aligned sizes.
        lower_bound: LB of the module docstring.
    """

    def __init__(self, buffers: Sequence[BufferLifetime]):
        names = [b.name for b in buffers]
        if len(set(names)) != len(names):
            seen: set[str] = set()
            dupes = sorted({n for n in names if n in seen or seen.add(n)})
            raise MemoryPlanError(
                f"buffer names must be unique, duplicated: {dupes}; give every tensor "
                "and workspace its own name"
            )
        self.buffers = tuple(buffers)
        self.first = np.array([b.first for b in buffers], dtype=np.int64)
        self.last = np.array([b.last for b in buffers], dtype=np.int64)
        self.size = np.array([b.aligned_size for b in buffers], dtype=np.int64)
        self.alignment = [b.alignment for b in buffers]
        if buffers:
            self.steps, self.live = _profile(self.first, self.last, self.size)
            self.lower_bound = int(self.live.max())
        else:
            self.steps = self.live = np.zeros(0, dtype=np.int64)
            self.lower_bound = 0
        self._neighbors: list[list[int]] | None = None

    @property
    def neighbors(self) -> list[list[int]]:
        """For each buffer, the indices of the other buffers live at a common step."""
        if self._neighbors is None:
            f, e = self.first, self.last
            conflict = (f[:, None] <= e[None, :]) & (f[None, :] <= e[:, None])
            np.fill_diagonal(conflict, False)
            self._neighbors = [np.flatnonzero(row).tolist() for row in conflict]
        return self._neighbors

    def breadth(self) -> np.ndarray:
        """For each buffer, the largest live-byte total over the steps of its lifetime."""
        lo = np.searchsorted(self.steps, self.first, side="left")
        hi = np.searchsorted(self.steps, self.last, side="right")
        live = self.live
        return np.array(
            [live[a:b].max() for a, b in zip(lo.tolist(), hi.tolist(), strict=True)], np.int64
        )


@dataclass(frozen=True)
class MemoryPlan:
    """Arena offsets of every buffer, with the arena size and its lower bound.

    Attributes:
        offsets: buffer name → byte offset from the arena base.
        arena_bytes: bytes the arena needs (``max(offset + aligned_size)``).
        lower_bound_bytes: LB: no plan of these buffers can be smaller.
        planner: registry name of the planner that made it.
        arena_alignment: the arena base must be aligned to this many bytes.
        strategy: for planners that try several strategies, the one that won.
    """

    offsets: dict[str, int]
    arena_bytes: int
    lower_bound_bytes: int
    planner: str
    arena_alignment: int = DEFAULT_ALIGNMENT
    strategy: str = field(default="")

    @property
    def ratio(self) -> float:
        """``arena_bytes / lower_bound_bytes`` (1.0 is optimal; 1.0 for an empty plan)."""
        if self.lower_bound_bytes == 0:
            return 1.0
        return self.arena_bytes / self.lower_bound_bytes

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict, with `ratio` added for readers of run artifacts."""
        out = asdict(self)
        out["offsets"] = dict(self.offsets)
        out["ratio"] = self.ratio
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MemoryPlan:
        """Inverse of `to_dict`; unknown keys raise (``ratio`` is derived and ignored)."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known - {"ratio"})
        if unknown:
            raise MemoryPlanError(f"unknown MemoryPlan keys {unknown}; known keys: {sorted(known)}")
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["offsets"] = {str(k): int(v) for k, v in kwargs.get("offsets", {}).items()}
        return cls(**kwargs)

    def validate(self, buffers: Sequence[BufferLifetime]) -> None:
        """Checks that this plan is safe for `buffers`; raises `MemoryPlanError` if not.

        Checked: every buffer has exactly one offset, offsets are aligned, every
        buffer lies inside the arena, and no two buffers live at a common step
        share a byte (actual sizes, so padding may be reused by a smarter planner).
        """
        names = [b.name for b in buffers]
        missing = sorted(set(names) - set(self.offsets))
        extra = sorted(set(self.offsets) - set(names))
        if missing or extra:
            raise MemoryPlanError(
                f"plan and buffers disagree: no offset for {missing}, offsets for unknown "
                f"buffers {extra}; plan the same buffer list you validate"
            )
        for b in buffers:
            off = self.offsets[b.name]
            if off < 0 or off % b.alignment:
                raise MemoryPlanError(
                    f"buffer {b.name!r} at offset {off} is not a non-negative multiple of its "
                    f"alignment {b.alignment}"
                )
            if off + b.size > self.arena_bytes:
                raise MemoryPlanError(
                    f"buffer {b.name!r} [{off}, {off + b.size}) ends past the arena of "
                    f"{self.arena_bytes} bytes"
                )
        _check_disjoint(self.offsets, buffers)


def _check_disjoint(offsets: Mapping[str, int], buffers: Sequence[BufferLifetime]) -> None:
    """Raises on the first pair of buffers that are live together and share a byte."""
    n = len(buffers)
    if n < 2:
        return
    lo = np.array([offsets[b.name] for b in buffers], dtype=np.int64)
    hi = lo + np.array([b.size for b in buffers], dtype=np.int64)
    first = np.array([b.first for b in buffers], dtype=np.int64)
    last = np.array([b.last for b in buffers], dtype=np.int64)
    for start in range(0, n, 512):  # row blocks keep memory at 512 x n booleans
        rows = slice(start, min(start + 512, n))
        clash = (
            (first[rows, None] <= last[None, :])
            & (first[None, :] <= last[rows, None])
            & (lo[rows, None] < hi[None, :])
            & (lo[None, :] < hi[rows, None])
        )
        clash[np.arange(rows.stop - start), np.arange(start, rows.stop)] = False
        if clash.any():
            i, j = np.argwhere(clash)[0]
            a, b = buffers[start + int(i)], buffers[int(j)]
            raise MemoryPlanError(
                f"buffers {a.name!r} (bytes [{lo[start + i]}, {hi[start + i]}), steps "
                f"[{a.first}, {a.last}]) and {b.name!r} (bytes [{lo[j]}, {hi[j]}), steps "
                f"[{b.first}, {b.last}]) are live at the same step and overlap in memory; "
                "this plan would corrupt activations: re-plan, or report the planner bug"
            )


def lower_bound(buffers: Sequence[BufferLifetime]) -> int:
    """LB: the largest total of aligned sizes of buffers live at one step (0 if none)."""
    return PlanningProblem(buffers).lower_bound


def peak_live(buffers: Sequence[BufferLifetime]) -> tuple[int, list[str]]:
    """The first step where live bytes reach LB, and the names of the buffers live there.

    Example:
        >>> peak_live([BufferLifetime("a", 64, 0, 1), BufferLifetime("b", 32, 1, 2)])
        (1, ['a', 'b'])
    """
    problem = PlanningProblem(buffers)
    if not buffers:
        raise MemoryPlanError("peak_live() needs at least one buffer")
    step = int(problem.steps[int(np.argmax(problem.live))])
    return step, [b.name for b in buffers if b.first <= step <= b.last]


class MemoryPlanner(abc.ABC):
    """Places buffers in one arena. Subclasses implement `_place`.

    Example:
        >>> from compiler.memory import get_planner
        >>> plan = get_planner("greedy").plan([BufferLifetime("x", 64, 0, 0)])
        >>> plan.offsets, plan.arena_bytes, plan.ratio
        ({'x': 0}, 64, 1.0)
    """

    name: str = "abstract"

    def plan(self, buffers: Sequence[BufferLifetime]) -> MemoryPlan:
        """Plans `buffers` (unique names) and returns offsets, arena size and lower bound."""
        problem = PlanningProblem(buffers)
        if not problem.buffers:
            return MemoryPlan({}, 0, 0, self.name)
        offsets, strategy = self._place(problem)
        arena = max(o + s for o, s in zip(offsets, problem.size.tolist(), strict=True))
        return MemoryPlan(
            offsets={b.name: int(o) for b, o in zip(problem.buffers, offsets, strict=True)},
            arena_bytes=int(arena),
            lower_bound_bytes=problem.lower_bound,
            planner=self.name,
            arena_alignment=max(problem.alignment),
            strategy=strategy,
        )

    @abc.abstractmethod
    def _place(self, problem: PlanningProblem) -> tuple[list[int], str]:
        """Offsets for `problem.buffers` (same order) and a short name of the strategy used."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def check_budget(
    plan: MemoryPlan,
    budget_bytes: int,
    what: str = "SRAM",
    buffers: Sequence[BufferLifetime] | None = None,
) -> None:
    """Raises `MemoryBudgetExceeded` when ``plan.arena_bytes > budget_bytes``.

    Args:
        plan: the plan to check.
        budget_bytes: bytes available for the arena (SRAM minus stack and statics).
        what: what the budget is, for the message, e.g. ``"SRAM of cortex-m7"``.
        buffers: the planned buffers; when given, the message names the peak step
            and the buffers live there, i.e. the tensors to shrink.
    """
    if budget_bytes < 0:
        raise ValueError(f"budget_bytes must be >= 0, got {budget_bytes}")
    if plan.arena_bytes <= budget_bytes:
        return
    overflow = plan.arena_bytes - budget_bytes
    lb = plan.lower_bound_bytes
    message = (
        f"planned arena of {plan.arena_bytes} bytes does not fit the {budget_bytes}-byte "
        f"budget for {what}: {overflow} bytes over (planner {plan.planner!r}, lower bound "
        f"{lb} bytes, arena/LB = {plan.ratio:.3f})."
    )
    if lb > budget_bytes:
        message += (
            f" No planner can fit it: the buffers live at the peak step alone need {lb} bytes."
            " Fix: shrink the largest activations (lower input resolution or channel widths"
            " near the peak), or choose a target with more SRAM."
        )
    else:
        message += (
            " The lower bound fits, so a better placement may: try planner 'greedy' (it tries"
            " several orderings), or free SRAM used by the stack and statics."
        )
    if buffers:
        step, names = peak_live(buffers)
        message += f" Peak at step {step}, live buffers: {', '.join(names)}."
    raise MemoryBudgetExceeded(message)
