"""CPU seconds per compiler stage, recorded only while a `StageTimes` is active.

The compiler marks its stages (`stage`: import, integer lowering, the techniques,
legalize and fuse, each kernel's schedule, its scratch, the memory plan); a caller that
wants the breakdown activates a `StageTimes` around the work (`StageTimes.active`), and
every stage run inside adds its seconds to it. With none active a stage costs one
context-variable lookup.

Seconds are the calling thread's CPU time (`time.thread_time`), not wall time: on a
shared, loaded machine wall time measures the other jobs. TVM's passes and torch (one
thread in `qanas.cost.subnet_export`) run on the calling thread. A stage inside
another is counted once, in the inner one: the outer stage gets its own time only.

Example:
    >>> times = StageTimes()
    >>> with times.active():
    ...     report = plan_model_memory(graph, "host")  # doctest: +SKIP
    >>> times.seconds  # doctest: +SKIP
    {'import': 0.21, 'integer lowering': 0.35, ...}
"""

from __future__ import annotations

import contextlib
import contextvars
import time
from collections.abc import Iterator

_ACTIVE: contextvars.ContextVar[StageTimes | None] = contextvars.ContextVar(
    "qanas_stage_times", default=None)


class StageTimes:
    """Thread CPU seconds per stage name, summed over every run of the stage.

    Attributes:
        seconds: stage name → CPU seconds spent in it (nested stages excluded).
        calls: stage name → times it ran.
    """

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self._stack: list[list] = []  # per open stage: [name, start, seconds of inner stages]

    @contextlib.contextmanager
    def active(self) -> Iterator[StageTimes]:
        """Records the stages run inside the block (in this thread or context) here."""
        token = _ACTIVE.set(self)
        try:
            yield self
        finally:
            _ACTIVE.reset(token)

    def _enter(self, name: str) -> None:
        self._stack.append([name, time.thread_time(), 0.0])

    def _exit(self) -> None:
        name, start, inner = self._stack.pop()
        elapsed = time.thread_time() - start
        self.seconds[name] = self.seconds.get(name, 0.0) + elapsed - inner
        self.calls[name] = self.calls.get(name, 0) + 1
        if self._stack:
            self._stack[-1][2] += elapsed

    def total(self) -> float:
        """CPU seconds of every stage together."""
        return sum(self.seconds.values())


@contextlib.contextmanager
def stage(name: str) -> Iterator[None]:
    """Counts the block's CPU time as stage `name` of the active `StageTimes`, if any."""
    times = _ACTIVE.get()
    if times is None:
        yield
        return
    times._enter(name)
    try:
        yield
    finally:
        times._exit()
