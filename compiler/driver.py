"""`compile_model`: an imported model → a standalone C project for a target.

The steps (`compiler.pipeline`, shared with the plan-only mode `compiler.plan_only`):

1. import, integer lowering (`compiler.passes.lower_to_integer`), the memory techniques
   of the ``optimise`` mode and the ``output`` form (`compiler.techniques`), legalize and
   fuse with ``relax.get_pipeline("zero")``, and the AOT execution plan
   (`compiler.plan.build_plan`): `compiler.pipeline.lower_model`;
2. one C kernel per fused PrimFunc, scheduled (`compiler.codegen.schedule`), and its
   scratch (`compiler.codegen.kernels`);
3. the static memory plan of activations and scratch (`compiler.memory`,
   `compiler.pipeline.plan_lowered`), checked against the target's SRAM: a model that
   does not fit even in ``size`` mode raises `MemoryBudgetExceeded` naming the best arena
   and the largest input size that fits (`compiler.fit`);
4. the project: model.h, model.c, weights.c, kernels/, include/, runtime/, Makefile,
   plan.json and compile.json (written last: its presence marks a complete project).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from compiler.codegen.kernels import KernelSource, build_kernels
from compiler.codegen.library import LibraryKernel, library_kernels
from compiler.errors import CompilerError
from compiler.fit import enforce_budget
from compiler.memory import MemoryPlan
from compiler.pipeline import (  # noqa: F401 - normalize_dataflow re-exported
    CompileOptions,
    lower_model,
    normalize_dataflow,
    plan_lowered,
)
from compiler.plan import ExecutionPlan
from compiler.plan_only import MemoryReport, memory_report
from compiler.project.files import (
    KERNELS_SUBDIR,
    collect_headers,
    copy_headers,
    copy_kernel_library,
    copy_runtime,
    render_makefile,
    tvm_include_dirs,
)
from compiler.project.model_c import IOQuant, render_header, render_model_c
from compiler.project.output_dir import (  # noqa: F401 - OutputDirExistsError re-exported
    PROJECT_KIND,
    OutputDirExistsError,
    check_output_dir,
    prepare_output_dir,
)
from compiler.project.weights import render_weights
from targets import Target, get_target

DEFAULT_PREFIX = "qanas_model"
MARKER = "compile.json"
GENERATED_DIRS = ("kernels", "include", "runtime", "build")


@dataclass(frozen=True)
class CompileResult:
    """What `compile_model` produced.

    Attributes:
        out_dir: the project directory.
        target: target name.
        prefix: C symbol prefix of the model API.
        plan: the execution plan (with workspaces).
        memory: the arena plan.
        kernels: kernel name → generated source (`KernelSource`), or the kernel library
            call it stands for (`LibraryKernel`, no source of its own).
        weights_bytes: bytes of const weights.
        quantized: the model is integer-only int8.
        float_kernels: kernel → lines using floating point; must be empty for a quantized
            model (the check the compiler makes on the generated C).
        io: input/output descriptions (name, C name, shape, dtype, bytes, scale, zero point).
        report: the memory report (options, bounds, techniques, extra MACs), the same
            `compiler.plan_only.plan_model_memory` returns.
    """

    out_dir: Path
    target: str
    prefix: str
    plan: ExecutionPlan
    memory: MemoryPlan
    kernels: dict[str, KernelSource | LibraryKernel]
    weights_bytes: int
    quantized: bool
    float_kernels: dict[str, list[str]] = field(default_factory=dict)
    io: dict[str, list[dict]] = field(default_factory=dict)
    report: MemoryReport | None = None

    @property
    def arena_bytes(self) -> int:
        """Planned arena bytes."""
        return self.memory.arena_bytes

    @property
    def lower_bound_bytes(self) -> int:
        """Largest set of simultaneously live arena buffers."""
        return self.memory.lower_bound_bytes

    def summary(self) -> dict:
        """The short summary printed by `qanas compile --json`.

        ``lower_bound_bytes`` is the bound of the chosen schedule, ``unfused_bound_bytes``
        the layer-wise bound of the graph without memory techniques.
        """
        memory = {}
        if self.report is not None:
            memory = {k: self.report.to_dict()[k] for k in (
                "unfused_bound_bytes", "optimise", "output", "techniques", "extra_macs")}
        return {
            "arena_bytes": self.arena_bytes,
            "lower_bound_bytes": self.lower_bound_bytes,
            **memory,
            "weights_bytes": self.weights_bytes,
            "kernels": self.plan.num_steps,
            "unsupported": [],
        }

    def to_dict(self) -> dict:
        """compile.json: the summary plus what a runner needs to feed and read the model."""
        return {
            **self.summary(),
            "target": self.target,
            "prefix": self.prefix,
            "planner": self.memory.planner,
            "arena_ratio": self.memory.ratio,
            "workspace_bytes": sum(b.size for b in self.plan.buffers.values()
                                   if b.kind == "workspace"),
            "quantized": self.quantized,
            "float_kernels": self.float_kernels,
            "kernel_names": [c.kernel for c in self.plan.calls],
            "kernel_implementations": [c.implementation for c in self.plan.calls],
            "kernel_library": sorted({c.library for c in self.plan.calls if c.library}),
            **self.io,
        }


def _prepare(out_dir: Path, force: bool, write: bool = True) -> Path:
    """Refuses `out_dir` unless it is new, empty or (with `force`) a qanas project; when
    `write`, empties its GENERATED_DIRS and marks it (`compiler.project.output_dir`)."""
    if not write:
        return check_output_dir(out_dir, force, PROJECT_KIND)
    return prepare_output_dir(out_dir, force, PROJECT_KIND, GENERATED_DIRS)


def _io_entries(infos, names, plan: ExecutionPlan) -> list[dict]:
    out = []
    for info, name in zip(infos, names, strict=True):
        b = plan.buffers[name]
        out.append({"name": info.name, "c_name": name, "shape": list(b.shape),
                    "dtype": b.dtype, "bytes": b.size,
                    "scale": getattr(info, "scale", None),
                    "zero_point": getattr(info, "zero_point", None)})
    return out


def compile_model(model, target: str | Target, out_dir, planner: str = "greedy",
                  force: bool = False, prefix: str = DEFAULT_PREFIX,
                  integer: bool | None = None, schedule: bool = True,
                  optimise: str = "size", output: str = "logits",
                  library: bool = True) -> CompileResult:
    """Compiles `model` into a C project in `out_dir`.

    Args:
        model: an ONNX path or ModelProto (imported with `compiler.frontend.load_model`)
            or an `ImportedModel`.
        target: registered target name or `Target`.
        out_dir: project directory: new or empty, or with `force` a project qanas wrote
            (its ``.qanas-project`` marker); any other folder is refused untouched.
        planner: memory planner name (`compiler.memory.PLANNERS`).
        force: overwrite an existing project.
        prefix: C symbol prefix of the model API, so several models link together.
        integer: lower to integer-only int8 first; None: when the model is quantized and
            its I/O is still float.
        schedule: apply the default kernel schedule (`compiler.codegen.schedule`); False
            builds the unscheduled loop nests, for comparison.
        optimise: ``size`` (every memory technique: the smallest arena) or ``speed``
            (no technique that recomputes MACs); `compiler.pipeline.OPTIMISE`.
        output: ``logits`` (the model's output) or ``argmax`` (a uint8 class map from a
            fused argmax; the full-resolution logits never exist).
        library: run the int8 groups the kernel library has (convolutions, pooling,
            add/mul) with it (`compiler.passes.offload_kernels`, weights packed for the
            target's `kernel_isa`); False: every kernel is TVM's.

    Returns:
        A `CompileResult`; its `summary()` is what `qanas compile --json` prints.

    Raises:
        UnsupportedOpError: an operator without a kernel; nothing is written.
        MemoryBudgetExceeded: the arena does not fit the target's SRAM even in ``size``
            mode; the message names the best arena, its techniques and the largest input
            size that fits.
        OutputDirExistsError: `out_dir` holds files (not a qanas project, or no `force`).
        OutputIsAFileError: `out_dir` is a file.

    Example:
        >>> res = compile_model("net.onnx", "host", "build/net")  # doctest: +SKIP
        >>> res.arena_bytes <= res.lower_bound_bytes  # doctest: +SKIP
        True
    """
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", prefix):
        raise CompilerError(f"prefix {prefix!r} must be a lower-case C identifier, "
                            f"e.g. {DEFAULT_PREFIX!r}")
    target = get_target(target) if isinstance(target, str) else target
    options = CompileOptions(planner=planner, integer=integer, schedule=schedule,
                             optimise=optimise, output=output, library=library,
                             kernel_isa=target.kernel_isa)
    out_dir = Path(out_dir)
    _prepare(out_dir, force, write=False)  # raises before any work is done
    source_model = model
    lowered = lower_model(model, options)
    model, plan = lowered.model, lowered.plan
    library_steps = library_kernels(lowered.fused, [c.kernel for c in plan.calls])
    kernels: dict[str, KernelSource | LibraryKernel] = {
        **build_kernels(lowered.fused, [c.kernel for c in plan.calls
                                        if c.kernel not in library_steps],
                        dict(target.tvm_target), prefix, schedule=schedule),
        **library_steps}
    plan, memory = plan_lowered(lowered, {k: s.workspace_bytes for k, s in kernels.items()},
                                planner)
    report = memory_report(lowered, plan, memory, target, options)
    enforce_budget(report, source_model, options, target, memory, plan.lifetimes())

    quantized = bool(model.quantized) and not any(
        t.dtype.startswith("float") for t in (*model.inputs, *model.outputs))
    float_kernels = {}
    if quantized:
        float_kernels = {k: s.float_usage() for k, s in kernels.items()
                         if isinstance(s, KernelSource) and s.float_usage()}

    io_names = {**dict(zip(plan.inputs, (t.name for t in model.inputs), strict=True)),
                **dict(zip(plan.outputs, (t.name for t in model.outputs), strict=True))}
    quant = {b: IOQuant(t.scale, t.zero_point)
             for b, t in [*zip(plan.inputs, model.inputs, strict=True), *zip(plan.outputs, model.outputs, strict=True)]}
    result = CompileResult(
        out_dir=out_dir, target=target.name, prefix=prefix, plan=plan, memory=memory,
        kernels=kernels, weights_bytes=plan.weights_bytes(), quantized=quantized,
        float_kernels=float_kernels,
        io={"inputs": _io_entries(model.inputs, plan.inputs, plan),
            "outputs": _io_entries(model.outputs, plan.outputs, plan)},
        report=report)
    _write_project(result, io_names, quant, getattr(model, "source", "model"), target)
    return result


def _write_project(result: CompileResult, io_names, quant, source: str, target: Target) -> None:
    out = _prepare(result.out_dir, force=True)
    plan, prefix = result.plan, result.prefix
    if (out / MARKER).exists():
        (out / MARKER).unlink()  # an interrupted rewrite must not look complete
    sources = [k for k in result.kernels.values() if isinstance(k, KernelSource)]
    uses_library = len(sources) < len(result.kernels)
    (out / "kernels").mkdir()
    for k in sources:
        (out / "kernels" / k.filename).write_text(k.source)
    headers = collect_headers([k.source for k in sources]
                              + ['#include "dlpack/dlpack.h"\n#include "tvm/ffi/c_api.h"\n'],
                              tvm_include_dirs())
    copy_headers(headers, out / "include")
    from runtime import C_RUNTIME_DIR

    copy_runtime(C_RUNTIME_DIR, out / "runtime")
    if uses_library:
        copy_kernel_library(out / "runtime" / KERNELS_SUBDIR)
    (out / "model.h").write_text(render_header(plan, prefix, result.arena_bytes,
                                               result.weights_bytes, quant, io_names, source))
    (out / "model.c").write_text(render_model_c(plan, prefix, result.memory.offsets,
                                                result.kernels, io_names,
                                                result.memory.planner,
                                                result.lower_bound_bytes))
    (out / "weights.c").write_text(render_weights(plan.constants, prefix, "qanas/platform.h"))
    sources_mk, makefile = render_makefile(
        prefix, [k.filename for k in sources], target.toolchain.cc,
        target.toolchain.cflags, library=uses_library, kernel_isa=target.kernel_isa)
    (out / "sources.mk").write_text(sources_mk)
    (out / "Makefile").write_text(makefile)
    plan_json = {**plan.to_dict(), "memory": result.memory.to_dict()}
    (out / "plan.json").write_text(json.dumps(plan_json, indent=2, sort_keys=True) + "\n")
    (out / MARKER).write_text(json.dumps(result.to_dict(), indent=2, sort_keys=True,
                                         default=str) + "\n")
