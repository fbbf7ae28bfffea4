"""The planners: a no-reuse baseline and greedy offset assignment in several orders.

**No reuse** (`NoReusePlanner`) gives every buffer its own region, one after the
other: the arena is the sum of all aligned sizes. It is the baseline that shows
what planning saves, and a plan that is trivially correct.

**Greedy offset assignment** (`GreedyPlanner`) visits the buffers in a fixed
order and places each one at once, never moving it again:

1. Collect the buffers already placed whose lifetimes overlap this one's
   (share a step); sort them by offset.
2. Walk the gaps between them from offset 0 upwards. *First fit* takes the
   lowest aligned offset whose gap holds the buffer; *best fit* takes the
   smallest gap that holds it (lowest offset on ties).
3. If no gap holds it, place it at the first aligned offset above all of them.

Buffers that are never live together may share bytes, which is all the reuse
there is. The visiting order decides the quality. By *size* (largest first) is
the order of TensorFlow Lite Micro's ``GreedyMemoryPlanner`` (first fit) and of
the "greedy by size for offset calculation" strategy of Pisarchyk & Lee,
*Efficient Memory Management for Deep Neural Net Inference* (2020, best fit):
big tensors placed first leave small holes that small tensors fill later.
Pisarchyk & Lee also order by *breadth*: tensors used at the step of greatest
memory pressure first. Here the breadth of a buffer is the largest live-byte
total over the steps of its lifetime, so the buffers of the peak step (the ones
that define the lower bound LB) are laid out first, side by side. Other orders
are the lifetime length (*duration*), size x duration (*area*) and the first
step (*start*, what a linear-scan allocator sees). All ties break on the
buffer's lifetime and then its name, so a plan never depends on input order.

**The default** (`GreedyMultiOrderPlanner`, registered as ``"greedy"``) aims
at LB directly. First it runs the bounded backtracking search of
`compiler.memory.search` with capacity LB: buffers in start order, each snapped
against the side of a free gap that lives longest (see that module); success
means an optimal plan, and on MobileNet-like chains with residuals and skips it
succeeds with little or no backtracking. If the search gives up (LB is not
always reachable, and its budget is a few placements per buffer) the planner
runs the greedy assignment over a list of (order, fit) strategies, keeps the
smallest arena, and stops at the first one that reaches LB. A strategy is
abandoned as soon as its arena passes the best so far. The no-reuse layout is a
last candidate, so the result never exceeds the baseline even with mixed
alignments (where a single greedy order can lose bytes to alignment gaps).

Cost: O(n log n) to sort plus, per buffer, a sort of its placed neighbours; for
activation chains (few buffers live at once) this is close to linear.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from compiler.memory.planner import MemoryPlanner, PlanningProblem
from compiler.memory.search import fit_within

FITS = ("first", "best")


def _key_size(p: PlanningProblem) -> list[tuple]:
    return [(-s, f - e, f, b.name) for s, f, e, b in _cols(p)]


def _key_breadth(p: PlanningProblem) -> list[tuple]:
    breadth = p.breadth().tolist()
    return [(-br, -s, f - e, f, b.name) for br, (s, f, e, b) in zip(breadth, _cols(p), strict=True)]


def _key_duration(p: PlanningProblem) -> list[tuple]:
    return [(f - e, -s, f, b.name) for s, f, e, b in _cols(p)]


def _key_area(p: PlanningProblem) -> list[tuple]:
    return [(-s * (e - f + 1), -s, f, b.name) for s, f, e, b in _cols(p)]


def _key_start(p: PlanningProblem) -> list[tuple]:
    return [(f, -s, e, b.name) for s, f, e, b in _cols(p)]


def _cols(p: PlanningProblem):
    return zip(p.size.tolist(), p.first.tolist(), p.last.tolist(), p.buffers, strict=True)


ORDERS: dict[str, Callable[[PlanningProblem], list[tuple]]] = {
    "size": _key_size,
    "breadth": _key_breadth,
    "duration": _key_duration,
    "area": _key_area,
    "start": _key_start,
}
"""Order name → sort keys per buffer (ascending sort; the visiting order of the greedy)."""


def visiting_order(problem: PlanningProblem, order: str) -> list[int]:
    """Indices of `problem.buffers` in the visiting order named `order` (see `ORDERS`)."""
    try:
        keys = ORDERS[order](problem)
    except KeyError:
        raise ValueError(f"unknown order {order!r}; known orders: {sorted(ORDERS)}") from None
    return sorted(range(len(keys)), key=keys.__getitem__)


def assign_offsets(
    problem: PlanningProblem, order: Sequence[int], fit: str = "first", give_up_above: int = -1
) -> tuple[list[int], int] | None:
    """Greedy offset assignment of the module docstring, visiting buffers in `order`.

    Args:
        problem: the buffers.
        order: a permutation of buffer indices.
        fit: "first" (lowest offset) or "best" (smallest gap that fits).
        give_up_above: if >= 0, return None as soon as the arena exceeds it.

    Returns:
        (offsets in buffer order, arena bytes), or None when given up.
    """
    best_fit = fit == "best"
    size = problem.size.tolist()
    align = problem.alignment
    neighbors = problem.neighbors
    offsets = [-1] * len(size)
    arena = 0
    for i in order:
        need, a = size[i], align[i]
        taken = sorted(
            (offsets[j], offsets[j] + size[j]) for j in neighbors[i] if offsets[j] >= 0 and size[j]
        )
        cursor, chosen, best_gap = 0, -1, -1
        for lo, hi in taken:
            candidate = (cursor + a - 1) & -a
            if candidate + need <= lo:
                if not best_fit:
                    chosen = candidate
                    break
                if best_gap < 0 or lo - candidate < best_gap:
                    chosen, best_gap = candidate, lo - candidate
            if hi > cursor:
                cursor = hi
        if chosen < 0:
            chosen = (cursor + a - 1) & -a
        offsets[i] = chosen
        if chosen + need > arena:
            arena = chosen + need
            if 0 <= give_up_above < arena:
                return None
    return offsets, arena


def no_reuse_offsets(problem: PlanningProblem) -> tuple[list[int], int]:
    """Back-to-back offsets, largest alignment first so that no padding is needed."""
    order = sorted(
        range(len(problem.buffers)),
        key=lambda i: (-problem.alignment[i], problem.buffers[i].first, problem.buffers[i].name),
    )
    offsets = [0] * len(order)
    cursor = 0
    for i in order:
        a = problem.alignment[i]
        offsets[i] = cursor = (cursor + a - 1) & -a
        cursor += int(problem.size[i])
    return offsets, cursor


class NoReusePlanner(MemoryPlanner):
    """Baseline: every buffer has its own bytes; arena = sum of aligned sizes."""

    name = "no-reuse"

    def _place(self, problem: PlanningProblem) -> tuple[list[int], str]:
        return no_reuse_offsets(problem)[0], "no-reuse"


class GreedyPlanner(MemoryPlanner):
    """Greedy offset assignment in one visiting order (see the module docstring).

    Example:
        >>> from compiler.memory import BufferLifetime
        >>> bufs = [BufferLifetime("a", 64, 0, 1), BufferLifetime("b", 32, 1, 2),
        ...         BufferLifetime("c", 64, 2, 3)]
        >>> GreedyPlanner("size").plan(bufs).offsets
        {'a': 0, 'b': 64, 'c': 0}
    """

    def __init__(self, order: str = "size", fit: str = "first"):
        if order not in ORDERS:
            raise ValueError(f"unknown order {order!r}; known orders: {sorted(ORDERS)}")
        if fit not in FITS:
            raise ValueError(f"unknown fit {fit!r}; known fits: {list(FITS)}")
        self.order, self.fit = order, fit
        self.name = f"greedy-by-{order}" + ("-best-fit" if fit == "best" else "")

    def _place(self, problem: PlanningProblem) -> tuple[list[int], str]:
        result = assign_offsets(problem, visiting_order(problem, self.order), self.fit)
        assert result is not None  # never given up without a bound
        return result[0], f"{self.order}/{self.fit}-fit"


class GreedyBySizePlanner(GreedyPlanner):
    """Largest buffer first, first fit: TFLite Micro's ``GreedyMemoryPlanner`` ordering."""

    def __init__(self, fit: str = "first"):
        super().__init__(order="size", fit=fit)


DEFAULT_STRATEGIES: tuple[tuple[str, str], ...] = (
    ("breadth", "first"),
    ("size", "first"),
    ("size", "best"),
    ("breadth", "best"),
    ("area", "first"),
    ("duration", "first"),
    ("start", "first"),
    ("start", "best"),
)
"""(order, fit) pairs tried by `GreedyMultiOrderPlanner`, in this order."""


class GreedyMultiOrderPlanner(MemoryPlanner):
    """Search for an arena of exactly LB, then greedy in several orders; keeps the smallest.

    Args:
        strategies: (order, fit) pairs to try, in order (default `DEFAULT_STRATEGIES`).
        search_budget: placements per buffer the LB search may try (0 skips the
            search; 4 reached LB on every net of ``benchmarks/memory_planner.py``).

    Example:
        >>> from compiler.memory import BufferLifetime
        >>> plan = GreedyMultiOrderPlanner().plan([BufferLifetime("a", 64, 0, 1),
        ...                                        BufferLifetime("b", 64, 2, 3)])
        >>> plan.arena_bytes, plan.ratio
        (64, 1.0)
    """

    name = "greedy"

    def __init__(
        self, strategies: Sequence[tuple[str, str]] = DEFAULT_STRATEGIES, search_budget: int = 4
    ):
        if search_budget < 0:
            raise ValueError(
                f"search_budget must be >= 0 placements per buffer, got {search_budget}"
            )
        self.search_budget = search_budget
        if not strategies:
            raise ValueError("GreedyMultiOrderPlanner needs at least one (order, fit) strategy")
        for order, fit in strategies:
            if order not in ORDERS or fit not in FITS:
                raise ValueError(
                    f"unknown strategy ({order!r}, {fit!r}); orders: {sorted(ORDERS)}, "
                    f"fits: {list(FITS)}"
                )
        self.strategies = tuple(strategies)

    def _place(self, problem: PlanningProblem) -> tuple[list[int], str]:
        n = len(problem.buffers)
        if self.search_budget:
            found = fit_within(problem, problem.lower_bound, self.search_budget * n)
            if found is not None:
                return found, "lb-search"
        best_offsets, best_arena = no_reuse_offsets(problem)
        best_name = "no-reuse"
        orders: dict[str, list[int]] = {}
        for order, fit in self.strategies:
            if best_arena <= problem.lower_bound:
                break
            if order not in orders:
                orders[order] = visiting_order(problem, order)
            # Ask for a strictly smaller arena: an equal one would not be kept anyway.
            result = assign_offsets(problem, orders[order], fit, give_up_above=best_arena - 1)
            if result is not None and result[1] < best_arena:
                (best_offsets, best_arena), best_name = result, f"{order}/{fit}-fit"
        return best_offsets, best_name
