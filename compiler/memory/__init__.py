"""Static memory planning: one arena, offsets fixed at compile time, no heap at run time.

Example:
    >>> from compiler.memory import BufferLifetime, get_planner
    >>> bufs = [BufferLifetime("in", 64, 0, 0), BufferLifetime("mid", 64, 0, 1),
    ...         BufferLifetime("out", 64, 1, 1)]
    >>> plan = get_planner().plan(bufs)
    >>> plan.offsets, plan.arena_bytes, plan.lower_bound_bytes
    ({'in': 64, 'mid': 0, 'out': 64}, 128, 128)

See docs/memory-planning.md for the algorithms and conventions.
"""

from compiler.memory.buffer import (
    DEFAULT_ALIGNMENT,
    BufferLifetime,
    align_up,
    workspace_buffers,
    workspace_bytes,
)
from compiler.memory.greedy import (
    GreedyBySizePlanner,
    GreedyMultiOrderPlanner,
    GreedyPlanner,
    NoReusePlanner,
)
from compiler.memory.planner import (
    MemoryPlan,
    MemoryPlanError,
    MemoryPlanner,
    check_budget,
    lower_bound,
    peak_live,
)
from compiler.memory.registry import (
    DEFAULT_PLANNER,
    PLANNERS,
    get_planner,
    plan_memory,
    plan_with_workspaces,
)

__all__ = [
    "DEFAULT_ALIGNMENT",
    "DEFAULT_PLANNER",
    "PLANNERS",
    "BufferLifetime",
    "GreedyBySizePlanner",
    "GreedyMultiOrderPlanner",
    "GreedyPlanner",
    "MemoryPlan",
    "MemoryPlanError",
    "MemoryPlanner",
    "NoReusePlanner",
    "align_up",
    "check_budget",
    "get_planner",
    "lower_bound",
    "peak_live",
    "plan_memory",
    "plan_with_workspaces",
    "workspace_buffers",
    "workspace_bytes",
]
