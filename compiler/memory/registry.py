"""Planners by name, and the one-call entry points the compiler and the NAS loop use.

Registered names: ``"greedy"`` (the default: several greedy orders, best kept),
``"greedy-by-size"`` (TFLite Micro's order, first fit), ``"greedy-by-size-best-fit"``
(Pisarchyk & Lee's offset strategy), ``"greedy-by-breadth"`` and ``"no-reuse"``
(the baseline). A new planner is one `PLANNERS.register` call with a factory.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial

from compiler.memory.buffer import DEFAULT_ALIGNMENT, BufferLifetime, workspace_buffers
from compiler.memory.greedy import (
    GreedyBySizePlanner,
    GreedyMultiOrderPlanner,
    GreedyPlanner,
    NoReusePlanner,
)
from compiler.memory.planner import MemoryPlan, MemoryPlanner
from targets.registry import Registry

DEFAULT_PLANNER = "greedy"

PLANNERS: Registry[Callable[[], MemoryPlanner]] = Registry("memory planner")
PLANNERS.register("greedy", GreedyMultiOrderPlanner)
PLANNERS.register("greedy-by-size", GreedyBySizePlanner)
PLANNERS.register("greedy-by-size-best-fit", partial(GreedyBySizePlanner, fit="best"))
PLANNERS.register("greedy-by-breadth", partial(GreedyPlanner, order="breadth"))
PLANNERS.register("no-reuse", NoReusePlanner)


def get_planner(name: str = DEFAULT_PLANNER) -> MemoryPlanner:
    """A new planner registered as `name`; an unknown name lists the known ones.

    Example:
        >>> get_planner("no-reuse").name
        'no-reuse'
    """
    return PLANNERS.get(name)()


def plan_memory(
    buffers: Sequence[BufferLifetime], planner: str | MemoryPlanner = DEFAULT_PLANNER
) -> MemoryPlan:
    """Plans `buffers` with `planner` (a registered name or an instance)."""
    if isinstance(planner, str):
        planner = get_planner(planner)
    return planner.plan(buffers)


def plan_with_workspaces(
    buffers: Sequence[BufferLifetime],
    workspaces: Mapping[int, int],
    planner: str | MemoryPlanner = DEFAULT_PLANNER,
    alignment: int = DEFAULT_ALIGNMENT,
) -> MemoryPlan:
    """Plans activation buffers and per-kernel scratch in one arena.

    Args:
        buffers: activation buffers (names must not start with ``"workspace_"``).
        workspaces: step → scratch bytes of the kernel at that step (0 or absent: none).
        planner: registered name or instance.
        alignment: alignment of each scratch region.

    Returns:
        One plan; scratch of the kernel at step ``s`` is ``plan.offsets[f"workspace_{s}"]``.

    Example:
        >>> plan = plan_with_workspaces([BufferLifetime("x", 64, 0, 1)], {1: 32})
        >>> plan.offsets, plan.arena_bytes
        ({'x': 0, 'workspace_1': 64}, 96)
    """
    return plan_memory([*buffers, *workspace_buffers(workspaces, alignment)], planner)
