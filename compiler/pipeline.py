"""The steps `compile_model` and `plan_model_memory` share: import → lower → fuse → plan.

Both entry points run the same functions in the same order; they differ only in where
each kernel's scratch size comes from:

1. `lower_model`: import (`compiler.frontend.load_model`), integer lowering
   (`compiler.passes.lower_to_integer`), the memory techniques of the `optimise` mode
   (`compiler.techniques`), legalize and fuse with ``relax.get_pipeline("zero")`` and
   read the AOT execution plan (`compiler.plan.build_plan`); the plan-only mode
   remembers legalized calls across models (`compiler.legalize_memo`: a structurally
   equal module, faster);
2. kernel scratch: `compile_model` builds the C kernels and reads their
   ``TVMBackendAllocWorkspace`` sizes from the source (`compiler.codegen.build_kernels`);
   the plan-only mode lowers the same scheduled PrimFuncs to TIR and reads the same
   calls there, without generating C (`compiler.workspace.kernel_scratch`);
3. `plan_lowered`: the static memory plan of activations and scratch
   (`compiler.memory`), validated, with the layer-wise bound of the unfused graph.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from compiler.errors import CompilerError
from compiler.memory import MemoryPlan, get_planner
from compiler.memory.planner import lower_bound
from compiler.plan import ExecutionPlan, build_plan
from compiler.stage_times import stage
from compiler.techniques import TechniqueUse, apply_techniques

OPTIMISE = ("size", "speed")
"""`--optimise` modes (Vela's convention): ``size`` applies every memory technique and
reaches the smallest arena; ``speed`` leaves out those that recompute MACs or slow kernels."""

OUTPUTS = ("logits", "argmax")
"""`--output` forms: the model's own output, or a uint8 class map (fused argmax)."""


@dataclass(frozen=True)
class CompileOptions:
    """How a model is lowered and planned; the same for compiling and plan-only.

    Attributes:
        planner: memory planner name (`compiler.memory.PLANNERS`).
        integer: lower to integer-only int8 first; None: when the model is quantized
            and its I/O is still float.
        schedule: apply the default kernel schedule (`compiler.codegen.schedule`).
        optimise: one of `OPTIMISE`.
        output: one of `OUTPUTS`.
        library: offload the int8 groups the kernel library has (convolutions, pooling,
            add/mul) to it (`compiler.passes.offload_kernels`); False: every kernel is
            TVM's.
        kernel_isa: the target's library path (`Target.kernel_isa`): the packed weight
            layout (``"mve"``: Helium blocks). `for_target` sets it.
    """

    planner: str = "greedy"
    integer: bool | None = None
    schedule: bool = True
    optimise: str = "size"
    output: str = "logits"
    library: bool = True
    kernel_isa: str = "portable"

    def __post_init__(self) -> None:
        if self.optimise not in OPTIMISE:
            raise CompilerError(f"optimise={self.optimise!r} is not a mode; choose one of "
                                f"{', '.join(OPTIMISE)} (size: smallest arena, speed: fewer "
                                "recomputed MACs)")
        if self.output not in OUTPUTS:
            raise CompilerError(f"output={self.output!r} is not an output form; choose one of "
                                f"{', '.join(OUTPUTS)}")
        get_planner(self.planner)  # an unknown planner lists the known ones

    def for_target(self, target) -> CompileOptions:
        """These options with `kernel_isa` of `target` (a `Target`)."""
        from dataclasses import replace

        return replace(self, kernel_isa=target.kernel_isa)


@dataclass(frozen=True)
class LoweredModel:
    """A model after integer lowering, memory techniques and fusion (step 1).

    Attributes:
        model: the `ImportedModel` after integer lowering and the techniques.
        fused: the legalized and fused Relax module (one PrimFunc per kernel).
        plan: its execution plan, without kernel scratch yet.
        techniques: the memory techniques applied, and where.
        unfused_bound_bytes: the layer-wise lower bound of the graph every layer of which
            writes its whole output (no technique applied): the bound the techniques
            are measured against; None when not measured (`lower_model`'s
            `measure_unfused`).
    """

    model: object
    fused: object
    plan: ExecutionPlan
    techniques: tuple[TechniqueUse, ...]
    unfused_bound_bytes: int | None

    @property
    def kernels(self) -> list[str]:
        """Fused kernel names in plan order, each once."""
        return list(dict.fromkeys(c.kernel for c in self.plan.calls))

    @property
    def extra_macs(self) -> int:
        """MACs the techniques recompute (patch halos), summed."""
        return sum(t.extra_macs for t in self.techniques)


def resolve_model(model, integer: bool | None):
    """An `ImportedModel` from a path, a ModelProto or an `ImportedModel`, lowered to
    integer-only int8 when `integer` (None: when quantized with float I/O)."""
    if isinstance(model, (str, Path)) or type(model).__name__ == "ModelProto":
        from compiler.frontend import load_model

        with stage("import"):
            model = load_model(model)
    if not hasattr(model, "mod"):
        raise CompilerError(f"the compiler needs an ONNX path, a ModelProto or an "
                            f"ImportedModel, got {type(model).__name__}")
    io_float = any(t.dtype.startswith("float") for t in (*model.inputs, *model.outputs))
    if integer is None:
        integer = model.quantized and io_float
    if integer:
        from compiler.frontend.guard import stage_errors
        from compiler.passes import lower_to_integer

        with stage("integer lowering"), stage_errors("integer lowering",
                                                     repr(getattr(model, "source", "the model"))):
            model = lower_to_integer(model)
    return model


def normalize_dataflow(mod):
    """Rebuilds `main`'s dataflow blocks so FuseOps sees every binding.

    A rewrite pass may leave a dataflow block whose ``R.output`` misses the value the
    function returns; fusion then treats the whole block as dead. Converting to plain
    bindings and back (then dropping dead code) gives a well-formed block again.
    """
    import tvm
    from tvm import relax

    return tvm.transform.Sequential([
        relax.transform.ToNonDataflow(),
        relax.transform.ConvertToDataflow(min_size=1),
        relax.transform.DeadCodeElimination(["main"]),
    ])(mod)


def zero_pipeline(legalize_memo=None):
    """``relax.get_pipeline("zero")`` (legalize, annotate, fold constants, fuse), with its
    LegalizeOps memoised by `legalize_memo` (a `compiler.legalize_memo.LegalizeMemo`)
    when given."""
    import tvm
    from tvm import relax

    if legalize_memo is None:
        return relax.get_pipeline("zero")
    t = relax.transform
    return tvm.transform.Sequential([legalize_memo.legalize(), t.AnnotateTIROpPattern(),
                                     t.FoldConstant(), t.FuseOps(), t.FuseTIR()])


def reachable_functions(mod):
    """`mod` without the functions ``main`` never calls, directly or through a Relax
    function it calls (the blocks a technique grouped and the offload then replaced by
    a library call, and the kernels only they called). PrimFuncs are not walked: before
    legalization no kernel calls another function (library calls name their C symbol)."""
    import tvm
    from tvm import relax

    reached: dict[str, tvm.ir.GlobalVar] = {}
    stack = [mod.get_global_var("main")]
    while stack:
        gv = stack.pop()
        if gv.name_hint in reached:
            continue
        reached[gv.name_hint] = gv
        func = mod[gv]
        if isinstance(func, relax.Function):
            stack.extend(relax.analysis.all_global_vars(func))
    if len(reached) == len(mod.functions):
        return mod
    out = mod.clone()
    for gv in mod.get_global_vars():
        if gv.name_hint not in reached:
            del out[gv]
    return out


def fuse_and_plan(model, legalize_memo=None,
                  prune: bool = False) -> tuple[object, ExecutionPlan]:
    """Legalizes and fuses `model.mod` (`zero_pipeline`) and reads its plan.

    `prune`: first drop the functions ``main`` does not reach (`reachable_functions`),
    so none of them is legalized or fused (the plan-only mode: the kernels are the
    same, but their names, numbered by the builder, may differ from `compile_model`'s).
    """
    from compiler.passes.copy_outputs import copy_passthrough_outputs

    mod = reachable_functions(model.mod) if prune else model.mod
    mod = copy_passthrough_outputs(normalize_dataflow(mod))
    fused = zero_pipeline(legalize_memo)(mod)
    in_names = [t.name for t in model.inputs] or None
    out_names = [t.name for t in model.outputs] or None
    return fused, build_plan(fused, out_names, in_names)


def offload(model, options: CompileOptions):
    """`model` with its library groups offloaded (`compiler.passes.offload_kernels`) when
    `options.library`, else unchanged."""
    if not options.library:
        return model
    from compiler.frontend.guard import stage_errors
    from compiler.passes.offload_kernels import offload_kernels

    with stage_errors("kernel library offload", repr(getattr(model, "source", "the model"))):
        return offload_kernels(model, options.kernel_isa)


def lower_model(model, options: CompileOptions, measure_unfused: bool = True,
                legalize_memo=None, prune: bool = False) -> LoweredModel:
    """Step 1: import, integer lowering, the techniques of `options`, fusion, the plan.

    `measure_unfused`: also fuse and plan the model without the techniques, for its
    layer-wise bound (a second fusion when a technique changed the graph).
    `legalize_memo`: a `compiler.legalize_memo.LegalizeMemo` (plan-only) or None.
    `prune`: legalize and fuse only what ``main`` reaches (`fuse_and_plan`; plan-only).

    Raises:
        UnsupportedOpError: an operator without a kernel.
        CompilerError: ``output="argmax"`` on outputs that are not 4-D logits of at most
            256 classes.
    """
    from compiler.frontend.guard import stage_errors

    model = resolve_model(model, options.integer)
    with stage("techniques"), stage_errors("memory techniques",
                                           repr(getattr(model, "source", "the model"))):
        techniqued, uses = apply_techniques(model, options.optimise, options.output,
                                            library=options.library)
    with stage("offload"):
        techniqued = offload(techniqued, options)
    with stage("legalize/fuse"):
        fused, plan = fuse_and_plan(techniqued, legalize_memo, prune)
    bound = None
    if measure_unfused:
        changed = any(u.changes_graph for u in uses)
        with stage("unfused bound"):
            unfused = (fuse_and_plan(offload(model, options), legalize_memo, prune)[1]
                       if changed else plan)
        bound = lower_bound(unfused.lifetimes())
    return LoweredModel(techniqued, fused, plan, uses, bound)


def plan_lowered(lowered: LoweredModel, scratch: Mapping[str, int],
                 planner: str) -> tuple[ExecutionPlan, MemoryPlan]:
    """Step 3: the plan with each kernel's scratch (`scratch`: kernel → bytes) and its
    validated memory plan."""
    plan = lowered.plan.with_workspaces({c.index: scratch.get(c.kernel, 0)
                                         for c in lowered.plan.calls})
    lifetimes = plan.lifetimes()
    memory = get_planner(planner).plan(lifetimes)
    memory.validate(lifetimes)
    return plan, memory
