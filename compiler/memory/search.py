"""Placing buffers inside a fixed capacity (the lower bound) by a bounded backtracking search.

The greedy planners never look at the arena size they are aiming for. This
search does: given a capacity (normally LB, so success means an optimal plan),
it visits buffers in the order they come alive, as a runtime allocator would,
and puts each one flush against one side of a free gap that lies inside
``[0, capacity)``. The rule that chooses the side is *snap to what lives longest*:
each gap is bounded by a live buffer or by an end of the arena (which lives
forever); the buffer is placed against the boundary that dies last. Short-lived
buffers then sit next to each other and their bytes merge into one free gap when
they die, which is what lets a chain ping-pong between the two ends of the arena
and lets a residual block stack its temporaries beside the tensor it adds back.

If a buffer fits no gap, the search backtracks to the previous buffer and tries
its next-preferred position (other side, other gaps). The number of placements
tried is capped, so a capacity that cannot be met (LB is not always reachable)
costs a bounded, predictable amount of time and the caller falls back to greedy.
"""

from __future__ import annotations

from compiler.memory.planner import PlanningProblem

_FOREVER = 1 << 62


def _candidates(
    i: int,
    problem: PlanningProblem,
    offsets: list[int],
    size: list[int],
    last: list[int],
    capacity: int,
) -> list[int]:
    """Offsets where buffer `i` fits in [0, capacity), least preferred first."""
    need, a = size[i], problem.alignment[i]
    if need == 0:
        return [0]
    taken = sorted(
        (offsets[j], offsets[j] + size[j], last[j])
        for j in problem.neighbors[i]
        if offsets[j] >= 0 and size[j]
    )
    taken.append((capacity, capacity, _FOREVER))  # the top of the arena, alive forever
    scored: dict[int, tuple[int, int, int]] = {}
    cursor, cursor_death = 0, _FOREVER  # the bottom of the arena, alive forever
    for lo, hi, death in taken:
        bottom = (cursor + a - 1) & -a
        top = (min(lo, capacity) - need) & -a
        if bottom <= top:
            gap = lo - cursor
            for offset, boundary in ((bottom, cursor_death), (top, death)):
                score = (boundary, -gap, -offset)
                if scored.get(offset, (-1, 0, 0)) < score:
                    scored[offset] = score
        if hi > cursor:
            cursor, cursor_death = hi, death
        elif hi == cursor:
            cursor_death = max(cursor_death, death)
    return sorted(scored, key=scored.__getitem__)


def fit_within(problem: PlanningProblem, capacity: int, max_placements: int) -> list[int] | None:
    """Offsets (in buffer order) that keep every buffer below `capacity`, or None.

    Args:
        problem: the buffers.
        capacity: arena bytes not to exceed (e.g. ``problem.lower_bound``).
        max_placements: budget of placements tried, backtracking included.

    Returns:
        Offsets with ``offset + aligned_size <= capacity`` and no conflict, or None
        when the budget ran out or no such placement exists.
    """
    n = len(problem.buffers)
    size = problem.size.tolist()
    first, last = problem.first.tolist(), problem.last.tolist()
    order = sorted(range(n), key=lambda i: (first[i], -last[i], -size[i], problem.buffers[i].name))
    offsets = [-1] * n
    stack: list[list[int]] = []
    depth, tried = 0, 0
    while depth < n:
        i = order[depth]
        if len(stack) == depth:
            tried += 1
            if tried > max_placements:
                return None
            stack.append(_candidates(i, problem, offsets, size, last, capacity))
        if stack[depth]:
            offsets[i] = stack[depth].pop()
            depth += 1
            continue
        stack.pop()  # no position left for buffer i: move the previous buffer
        offsets[i] = -1
        depth -= 1
        if depth < 0:
            return None
        offsets[order[depth]] = -1
    return offsets
