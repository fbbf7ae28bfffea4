"""Arena memory over the kernel schedule, read from the compiled project's plan.json.

plan.json holds every buffer with its kind, size and lifetime ``[first, last]`` (kernel
call indices, inclusive) and the memory plan (arena offsets, arena bytes, lower bound).
The live bytes at step s are the aligned sizes of the arena buffers live at s; their
maximum is the lower bound no planner can beat (docs/memory-planning.md). Recomputing
it here and comparing with the compiler's figure checks that the report draws what the
compiler planned.
"""

from __future__ import annotations

from dataclasses import dataclass

from compiler.memory.buffer import DEFAULT_ALIGNMENT, align_up
from compiler.plan import ARENA_KINDS
from qanas.report.model import ReportError


@dataclass(frozen=True)
class Placement:
    """One arena buffer: name, kind, lifetime (steps, inclusive), offset and aligned size."""

    name: str
    kind: str
    first: int
    last: int
    offset: int
    size: int


@dataclass(frozen=True)
class MemoryProfile:
    """Live arena bytes per kernel call, with the plan's arena and lower bound.

    Attributes:
        kernels: kernel name of each step.
        live_bytes: aligned bytes of the arena buffers live at each step.
        arena_bytes: the planned arena (compiler).
        lower_bound_bytes: the compiler's lower bound.
        recomputed_lower_bound: max of `live_bytes` (must equal `lower_bound_bytes`).
        planner: the planner that placed the buffers.
        placements: the buffers with their offsets (the memory map).
    """

    kernels: tuple[str, ...]
    live_bytes: tuple[int, ...]
    arena_bytes: int
    lower_bound_bytes: int
    recomputed_lower_bound: int
    planner: str
    placements: tuple[Placement, ...]

    @property
    def peak_step(self) -> int:
        """The first step at which the live bytes reach their maximum."""
        return max(range(len(self.live_bytes)), key=lambda i: (self.live_bytes[i], -i))


def memory_profile(plan: dict, alignment: int = DEFAULT_ALIGNMENT) -> MemoryProfile:
    """The `MemoryProfile` of a plan.json dict.

    Raises:
        ReportError: the dict lacks calls, buffers or the memory plan.
    """
    missing = [k for k in ("calls", "buffers", "memory") if k not in plan]
    if missing:
        raise ReportError(f"plan.json lacks {missing}; recompile the project with "
                          "`qanas compile` (plan.json is written by compiler.driver)")
    kernels = tuple(str(c["kernel"]) for c in sorted(plan["calls"], key=lambda c: c["index"]))
    memory = plan["memory"]
    offsets = memory.get("offsets", {})
    live = [0] * len(kernels)
    placements = []
    for b in plan["buffers"]:
        if b["kind"] not in ARENA_KINDS:
            continue
        size = align_up(int(b["size"]), alignment)
        first, last = int(b["first"]), int(b["last"])
        for step in range(first, min(last, len(kernels) - 1) + 1):
            live[step] += size
        if b["name"] in offsets:
            placements.append(Placement(b["name"], b["kind"], first, last,
                                        int(offsets[b["name"]]), size))
    return MemoryProfile(kernels, tuple(live), int(memory["arena_bytes"]),
                         int(memory["lower_bound_bytes"]), max(live, default=0),
                         str(memory.get("planner", "")), tuple(placements))


def kernel_family(name: str) -> str:
    """A readable family of a fused kernel name: conv2d, pad, add, resize, ..."""
    body = name.removeprefix("fused_")
    head = body.split("_", 1)[0].rstrip("0123456789")
    return head or name


def technique_rows(compile_info: dict | None) -> tuple[tuple[str, str], ...]:
    """Rows of the memory table from compile.json: the `--optimise` mode, the layer-wise
    bound of the unfused graph, and each memory technique with where it applied and the
    MACs it recomputes. Empty for a project compiled before these figures existed."""
    info = compile_info or {}
    if info.get("unfused_bound_bytes") is None:
        return ()
    rows = [("optimise / output", f"{info.get('optimise')} / {info.get('output')}"),
            ("layer-wise bound of the unfused graph", f"{int(info['unfused_bound_bytes']):,} B"),
            ("extra MACs (recomputed by the techniques)", f"{int(info.get('extra_macs', 0)):,}")]
    techniques = info.get("techniques") or []
    if not techniques:
        rows.append(("memory techniques", "none applied"))
    for t in techniques:
        where = ", ".join(t.get("where", [])[:6])
        more = len(t.get("where", [])) - 6
        rows.append((f"technique: {t['technique']}",
                     f"{len(t.get('where', []))} places ({where}{f', +{more}' if more > 0 else ''})"))
    return tuple(rows)
