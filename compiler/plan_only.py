"""Plan-only mode: the arena `compile_model` would plan, without generating or writing C.

`plan_model_memory` runs the steps of `compiler.pipeline` that `compile_model` runs
(import → lower → techniques → fuse → plan → kernel scratch → memory plan), with the
kernel scratch read from the lowered TIR (`compiler.workspace`) instead of built C, and
returns a `MemoryReport`. Operator legalizations, TE kernels and fused blocks' library
calls are remembered across calls (`compiler.legalize_memo`, `compiler.te_memo`,
`compiler.block_memo`), and only the functions ``main`` reaches are legalized and fused
(`compiler.pipeline.reachable_functions`): every step runs a kernel structurally equal
to the compiler's, on the same buffers, though the builder may number kernel names
differently. Its arena equals the compiled arena byte for byte; the search uses it as
its SRAM objective.

Example:
    >>> report = plan_model_memory("net_qdq.onnx", "cortex-m7")  # doctest: +SKIP
    >>> report.arena_bytes, report.unfused_bound_bytes  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

from compiler.block_memo import BlockMemo
from compiler.legalize_memo import LegalizeMemo
from compiler.memory import MemoryPlan
from compiler.pipeline import CompileOptions, LoweredModel, lower_model, plan_lowered
from compiler.plan import ExecutionPlan
from compiler.stage_times import stage
from compiler.te_memo import TeMemo
from compiler.techniques import TechniqueUse
from compiler.workspace import ScratchCache, kernel_scratch
from targets import Target, get_target


@dataclass(frozen=True)
class MemoryReport:
    """What the memory plan of one model for one target reaches, and how.

    Attributes:
        target: target name.
        optimise, output, planner: the options it was planned with.
        arena_bytes: the planned arena (activations and kernel scratch).
        lower_bound_bytes: the bound of the chosen schedule (its busiest step).
        unfused_bound_bytes: the layer-wise bound of the graph with every layer's output
            in full (no memory technique): what the techniques are measured against
            (None when not measured).
        techniques: the techniques applied, and where.
        extra_macs: MACs the techniques recompute.
        workspace_bytes: kernel scratch, summed over kernels.
        weights_bytes: constant bytes (flash).
        num_kernels: kernel calls of the plan.
        sram_bytes: the target's SRAM (None when unbounded).
    """

    target: str
    optimise: str
    output: str
    planner: str
    arena_bytes: int
    lower_bound_bytes: int
    unfused_bound_bytes: int | None
    techniques: tuple[TechniqueUse, ...]
    extra_macs: int
    workspace_bytes: int
    weights_bytes: int
    num_kernels: int
    sram_bytes: int | None = None

    @property
    def fits(self) -> bool:
        """The arena fits the target's SRAM (always, when the SRAM is unbounded)."""
        return self.sram_bytes is None or self.arena_bytes <= self.sram_bytes

    def to_dict(self) -> dict:
        """JSON-friendly form (compile.json's ``memory`` entry, bench, reports)."""
        return {"target": self.target, "optimise": self.optimise, "output": self.output,
                "planner": self.planner, "arena_bytes": self.arena_bytes,
                "lower_bound_bytes": self.lower_bound_bytes,
                "unfused_bound_bytes": self.unfused_bound_bytes,
                "techniques": [t.to_dict() for t in self.techniques],
                "extra_macs": self.extra_macs, "workspace_bytes": self.workspace_bytes,
                "weights_bytes": self.weights_bytes, "num_kernels": self.num_kernels,
                "sram_bytes": self.sram_bytes}


def memory_report(lowered: LoweredModel, plan: ExecutionPlan, memory: MemoryPlan,
                  target: Target, options: CompileOptions) -> MemoryReport:
    """The `MemoryReport` of a planned model (shared by `compile_model` and plan-only)."""
    return MemoryReport(
        target=target.name, optimise=options.optimise, output=options.output,
        planner=memory.planner, arena_bytes=memory.arena_bytes,
        lower_bound_bytes=memory.lower_bound_bytes,
        unfused_bound_bytes=lowered.unfused_bound_bytes, techniques=lowered.techniques,
        extra_macs=lowered.extra_macs,
        workspace_bytes=sum(b.size for b in plan.buffers.values() if b.kind == "workspace"),
        weights_bytes=plan.weights_bytes(), num_kernels=plan.num_steps,
        sram_bytes=target.sram.size if target.sram is not None else None)


PROCESS_LEGALIZE_MEMO = LegalizeMemo()
"""The legalizations `plan_model_memory` remembers across calls in this process."""

PROCESS_TE_MEMO = TeMemo()
"""The TE kernels `plan_model_memory` remembers across calls in this process."""

PROCESS_BLOCK_MEMO = BlockMemo()
"""The fused blocks' library calls `plan_model_memory` remembers across calls in this
process."""


def plan_model_memory(model, target: str | Target = "host",
                      options: CompileOptions | None = None,
                      scratch_cache: ScratchCache | None = None,
                      measure_unfused: bool = True,
                      legalize_memo: LegalizeMemo | None = None) -> MemoryReport:
    """The memory plan `compile_model` would make for `model` on `target`, without C.

    Args:
        model: an ONNX path, a ModelProto or an `ImportedModel`.
        target: registered target name or `Target`.
        options: lowering and planning options (default `CompileOptions()`).
        scratch_cache: kernels' scratch remembered across calls (`ScratchCache`), for
            callers that plan many related models (the search).
        measure_unfused: also measure the layer-wise bound without techniques (a second
            fusion of the graph); False leaves ``unfused_bound_bytes`` None.
        legalize_memo: operator legalizations remembered across calls
            (`compiler.legalize_memo`); `PROCESS_LEGALIZE_MEMO` when None.

    Returns:
        The `MemoryReport`. A plan larger than the target's SRAM is reported
        (``fits`` is False), not raised: the search treats it as a constraint.

    Raises:
        UnsupportedOpError: an operator without a kernel.
    """
    target = get_target(target) if isinstance(target, str) else target
    options = (options or CompileOptions()).for_target(target)
    with PROCESS_TE_MEMO.active(), PROCESS_BLOCK_MEMO.active():
        lowered = lower_model(model, options, measure_unfused,
                              legalize_memo if legalize_memo is not None
                              else PROCESS_LEGALIZE_MEMO, prune=True)
    with stage("kernel scratch"):  # its kernels' schedules are a stage of their own
        scratch = kernel_scratch(lowered.fused, lowered.kernels, dict(target.tvm_target),
                                 schedule=options.schedule, cache=scratch_cache)
    with stage("plan"):
        plan, memory = plan_lowered(lowered, scratch, options.planner)
        return memory_report(lowered, plan, memory, target, options)
