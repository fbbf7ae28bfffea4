"""When a model does not fit: the best arena any mode reaches, and the largest input that fits.

`enforce_budget` is the compiler's SRAM check. A plan over the target's SRAM is
retried in ``size`` mode (every memory technique); if that fits, the error says to use
it; if not, `largest_fitting_input` plans the same ONNX graph at smaller input sizes
(plan-only, `compiler.plan_only`) and the `MemoryBudgetExceeded` message names the best
arena, the techniques that reached it and the largest input size that fits.

Changing the input size of an exported graph: the input's height and width are set,
the output's spatial dims and every constant ``Resize`` ``sizes`` are scaled by the same
ratio (an exporter folds ``F.interpolate(size=x.shape[-2:])`` into such constants), and
shape inference does the rest. Candidate sizes keep the aspect ratio and are multiples
of `SIZE_STEP` (of half the height for small inputs), so the strided layers divide
them as they divide the original.
"""

from __future__ import annotations

from dataclasses import replace

from compiler.errors import CompilerError, MemoryBudgetExceeded

SIZE_STEP = 32
"""Candidate input heights are multiples of this (the largest total stride of our nets)."""


def with_input_size(proto, size: tuple[int, int]):
    """A copy of ONNX `proto` whose one NCHW input is ``size`` (H, W).

    Raises:
        CompilerError: the graph has several inputs, a non-NCHW input, or a constant
            ``Resize`` size that does not scale to an integer.
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.ModelProto()
    model.CopyFrom(proto)
    graph = model.graph
    inits = {i.name for i in graph.initializer}
    inputs = [i for i in graph.input if i.name not in inits]
    if len(inputs) != 1 or len(inputs[0].type.tensor_type.shape.dim) != 4:
        raise CompilerError("changing the input size needs one NCHW input")
    dims = inputs[0].type.tensor_type.shape.dim
    old = (dims[2].dim_value, dims[3].dim_value)
    dims[2].dim_value, dims[3].dim_value = size

    def scaled(value: int, axis: int) -> int:
        new, rem = divmod(value * size[axis], old[axis])
        if rem:
            raise CompilerError(f"a spatial size {value} of the {old[0]}x{old[1]} graph does "
                                f"not scale to {size[0]}x{size[1]}")
        return new

    for out in graph.output:
        odims = out.type.tensor_type.shape.dim
        if len(odims) == 4:
            odims[2].dim_value = scaled(odims[2].dim_value, 0)
            odims[3].dim_value = scaled(odims[3].dim_value, 1)
    resize_sizes = {n.input[3] for n in graph.node
                    if n.op_type == "Resize" and len(n.input) > 3 and n.input[3]}
    for i, init in enumerate(graph.initializer):
        if init.name in resize_sizes:
            value = numpy_helper.to_array(init).copy()
            value[2], value[3] = scaled(int(value[2]), 0), scaled(int(value[3]), 1)
            graph.initializer[i].CopyFrom(numpy_helper.from_array(value, init.name))
    del graph.value_info[:]
    return model


def candidate_sizes(size: tuple[int, int], step: int = SIZE_STEP) -> list[tuple[int, int]]:
    """Input sizes below `size` with its aspect ratio, heights multiples of `step` (of
    half the height when that is smaller), largest first."""
    h, w = size
    step = min(step, max(1, h // 2))
    out = []
    for hh in range(h - (h % step or step), 0, -step):
        ww, rem = divmod(hh * w, h)
        if not rem and ww > 0:
            out.append((hh, ww))
    return out


def largest_fitting_input(proto, target, options) -> tuple[tuple[int, int], int] | None:
    """The largest candidate input size whose plan fits `target`'s SRAM, and its arena.

    Binary search over `candidate_sizes` (the arena grows with the input size); None when
    not even the smallest fits or the graph cannot be resized.
    """
    from compiler.plan_only import plan_model_memory

    dims = [i for i in proto.graph.input
            if i.name not in {t.name for t in proto.graph.initializer}][0]
    shape = dims.type.tensor_type.shape.dim
    sizes = candidate_sizes((shape[2].dim_value, shape[3].dim_value))
    best, lo, hi = None, 0, len(sizes) - 1
    while lo <= hi:
        mid = (lo + hi) // 2
        try:
            report = plan_model_memory(with_input_size(proto, sizes[mid]), target, options)
        except CompilerError:
            return best
        if report.fits:
            best, hi = (sizes[mid], report.arena_bytes), mid - 1
        else:
            lo = mid + 1
    return best


def _techniques_text(report) -> str:
    if not report.techniques:
        return "no memory technique applies to this graph"
    return ", ".join(f"{t.technique} ({len(t.where)}x)" for t in report.techniques)


def enforce_budget(report, model, options, target, memory=None, lifetimes=None) -> None:
    """Raises `MemoryBudgetExceeded` when `report`'s arena does not fit `target`'s SRAM.

    Args:
        report: the `MemoryReport` of `model` planned with `options`.
        model: what was compiled (an ONNX path or ModelProto can be re-planned at other
            input sizes; an `ImportedModel` cannot).
        options: the `CompileOptions` used.
        target: the `Target`.
        memory, lifetimes: the `MemoryPlan` and its buffers; when given, the message
            starts with `compiler.memory.check_budget`'s (overflow, peak step, live buffers).
    """
    if report.fits:
        return
    from compiler.memory import check_budget
    from compiler.plan_only import plan_model_memory

    sram = report.sram_bytes
    detail = ""
    if memory is not None:
        try:
            check_budget(memory, sram, f"SRAM of {target.name}", lifetimes)
        except MemoryBudgetExceeded as exc:
            detail = f"{exc} "
    best = report
    if options.optimise != "size":
        best = plan_model_memory(model, target, replace(options, optimise="size"))
        if best.fits:
            raise MemoryBudgetExceeded(
                f"{detail}The arena of {report.arena_bytes:,} B with --optimise {options.optimise} "
                f"exceeds the {sram:,} B SRAM of {target.name}; --optimise size reaches "
                f"{best.arena_bytes:,} B ({_techniques_text(best)}), which fits: compile "
                "with optimise='size'")
    proto = _as_proto(model)
    fit = None if proto is None else largest_fitting_input(proto, target,
                                                           replace(options, optimise="size"))
    if fit is not None:
        (h, w), arena = fit
        advice = (f"the largest input of this aspect ratio that fits is {h}x{w} "
                  f"(arena {arena:,} B); export the model at that size or choose a target "
                  "with more SRAM")
    elif proto is None:
        advice = ("pass the ONNX model (not an imported one) to learn the largest input "
                  "size that fits; or choose a target with more SRAM")
    else:
        advice = ("no smaller input size of this aspect ratio fits either; shrink the model "
                  "(fewer channels at high resolution) or choose a target with more SRAM")
    raise MemoryBudgetExceeded(
        f"{detail}The arena does not fit the {sram:,} B SRAM of {target.name} even with every "
        f"memory technique: the best plan (--optimise size, {_techniques_text(best)}) "
        f"needs {best.arena_bytes:,} B (bound of its schedule {best.lower_bound_bytes:,} B, "
        f"layer-wise bound without techniques {best.unfused_bound_bytes:,} B); {advice}")


def _as_proto(model):
    from pathlib import Path

    if isinstance(model, (str, Path)):
        from compiler.onnx_file import read_onnx

        return read_onnx(model)
    if type(model).__name__ == "ModelProto":
        return model
    return None
