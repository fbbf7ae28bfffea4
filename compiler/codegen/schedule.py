"""The default schedule of a fused kernel for CPU / MCU C code generation.

``relax.get_pipeline("zero")`` leaves every fused PrimFunc as a sequence of unscheduled
loop nests, one per operator: the (zero-point) padded input copy, the int32 accumulator
of a convolution, and each requantization step (cast to int64, add bias, multiply,
shift, round, clip, cast to int8) all write a full-size temporary, which TVM turns into
``TVMBackendAllocWorkspace`` scratch. `schedule_kernel` rewrites the loop nests with
``tvm.s_tir.Schedule`` primitives so that no temporary is larger than one output row:

1. `inline_elementwise`: ``compute_inline`` every block that is not a reduction, into its
   consumers (the padding copy goes into the convolution's read, each requantization step
   into the next), repeated until nothing more inlines; blocks that still remain are then
   tried with ``reverse_compute_inline`` into their single producer;
2. `fuse_epilogues`: for each reduction block (convolution, depthwise, matmul, pooling,
   mean), its remaining consumer (the inlined epilogue) is moved with
   ``reverse_compute_at`` under an outer output loop (channel or row), the reduction
   loops are reordered outside the inner output loops (so the inner loop is contiguous),
   and the init is hoisted out of the reduction loops with ``decompose_reduction``. The
   accumulator then spans one output plane or row, as large as fits in
   `ACCUMULATOR_BYTES` (one element when a row does not); TVM's
   ``CompactBufferAllocation`` shrinks it to a small stack array instead of a workspace.
3. `split_borders` (`compiler.codegen.border_split`): the inner output loop of a padded
   reduction is partitioned into left border, interior and right border, so the interior
   reads the input without the per-tap column bounds test the inlined padding left.

Each rule is tried block by block: a ``ScheduleError`` (an unexpected PrimFunc structure)
skips that block for that rule, logged at debug level, and the kernel keeps its
unscheduled form there. The schedule never changes what is computed, only the loop
structure and where temporaries live, so the numbers are the same bit for bit.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

from compiler.codegen.border_split import split_borders
from compiler.codegen.row_bands import BAND_ROWS
from compiler.codegen.sblocks import is_reduction, spatial_prefix, top_level_blocks, try_primitive

log = logging.getLogger(__name__)

FUSED_KERNEL = re.compile(r"^irb\d+_")
"""Name of a fused inverted-residual kernel (`compiler.passes.fuse_inverted_residual`),
scheduled by `compiler.codegen.row_bands` instead of the rules below."""

SCHEDULE_RULES: tuple[str, ...] = ("inline_elementwise", "fuse_epilogues", "split_borders")
"""Rule names in the order `schedule_kernel` applies them."""

ACCUMULATOR_BYTES = 512
"""Largest accumulator `fuse_epilogues` keeps (a stack array in the generated C; TVM
turns arrays of 1 KiB or more into workspace scratch)."""


def inline_elementwise(sch, kernel: str = "") -> int:
    """Inlines every non-reduction block into its consumers, then into its producer.

    ``compute_inline`` needs a block that writes one buffer with plain indices and is not
    the function's output; the output block is instead folded backwards into its producer
    with ``reverse_compute_inline`` when that producer is itself elementwise (a reduction
    producer is left to `fuse_epilogues`). Inlining one block can enable another, so both
    passes repeat until a fixed point.

    Args:
        sch: a `tvm.s_tir.Schedule` over a module with one function, ``main``.
        kernel: kernel name, for the debug log.

    Returns:
        How many blocks were inlined.
    """
    def candidates(primitive):
        # Temporaries are the root block's allocations; anything else is a parameter.
        temps = list(sch.mod["main"].body.block.alloc_buffers)
        for block in top_level_blocks(sch):
            if is_reduction(sch, block):
                continue
            writes_temp = all(any(w.source.same_as(t) for t in temps)
                              for w in sch.get(block).writes)
            if primitive == "compute_inline" and writes_temp:
                yield block
            if primitive == "reverse_compute_inline":
                producers = list(sch.get_producers(block))
                if len(producers) == 1 and not is_reduction(sch, producers[0]):
                    yield block

    inlined = 0
    for primitive in ("compute_inline", "reverse_compute_inline"):
        apply = getattr(sch, primitive)
        progress = True
        while progress:
            progress = False
            for block in candidates(primitive):
                name = sch.get(block).name_hint
                if try_primitive(kernel, primitive, name, lambda b=block, f=apply: f(b)):
                    inlined += 1
                    progress = True
                    break  # block handles are stale once the tree changed
    return inlined


def _inner_spatial(sch, block, spatial: list, limit: int) -> int:
    """How many innermost spatial loops the accumulator can span within `limit` bytes.

    Taking the loops from the inside out (output columns, then rows, then channels) while
    the accumulator they span fits; never all of them (the epilogue needs a loop to be
    placed under), 0 when even one output row is too large.
    """
    import tvm

    dtype = tvm.DataType(sch.get(block).writes[0].source.dtype)
    size, count = dtype.bits * dtype.lanes // 8, 0
    for loop in reversed(spatial[1:]):
        extent = sch.get(loop).extent
        if not isinstance(extent, tvm.tirx.IntImm) or size * int(extent) > limit:
            break
        size, count = size * int(extent), count + 1
    return count


def fuse_epilogues(sch, kernel: str = "", max_bytes: int = ACCUMULATOR_BYTES) -> int:
    """Moves each reduction's consumer under its output loops; hoists the init.

    The accumulator spans the innermost output loops (a row, or a whole small plane)
    as long as it fits in `max_bytes`: the epilogue goes under the next spatial loop out
    and the reduction loops move outside the spanned ones, so the inner loop walks
    contiguous input and output with one weight (``acc[x] += in[c, y + ky, x + kx] * w``).
    When even one row is too large it spans one output element (the epilogue goes under
    the innermost spatial loop, the reduction loops stay innermost).

    Args:
        sch: a `tvm.s_tir.Schedule` over a module with one function, ``main``.
        kernel: kernel name, for the debug log.
        max_bytes: largest accumulator, in bytes; 0 always gives one element.

    Returns:
        How many reductions had their epilogue fused.
    """
    reductions = [sch.get(b).name_hint for b in top_level_blocks(sch) if is_reduction(sch, b)]
    fused = 0
    for name in reductions:
        block = sch.get_sblock(name)
        spatial, reduce = spatial_prefix(sch, block)
        inner = _inner_spatial(sch, block, spatial, max_bytes) if reduce else 0
        consumers = list(sch.get_consumers(block))
        if len(consumers) > 1:
            log.debug("schedule %s: rule fuse_epilogues skipped block %s: %d consumers",
                      kernel, name, len(consumers))
        elif consumers and spatial:
            consumer = consumers[0]
            consumer_name = sch.get(consumer).name_hint
            ok = try_primitive(kernel, "reverse_compute_at", consumer_name,
                      lambda c=consumer, loop=spatial[-1 - inner]: sch.reverse_compute_at(c, loop))
            if not ok and inner:  # e.g. the epilogue reads neighbouring rows: one element
                inner = 0
                ok = try_primitive(kernel, "reverse_compute_at", consumer_name,
                          lambda c=consumer, loop=spatial[-1]: sch.reverse_compute_at(c, loop))
            fused += ok
        if inner:
            try_primitive(kernel, "reorder", name,
                 lambda loops=(*reduce, *spatial[-inner:]): sch.reorder(*loops))
        if reduce:
            try_primitive(kernel, "decompose_reduction", name,
                 lambda b=block, loop=reduce[0]: sch.decompose_reduction(b, loop))
    return fused


_RULE_FUNCS: dict[str, Callable] = {"inline_elementwise": inline_elementwise,
                                    "fuse_epilogues": fuse_epilogues,
                                    "split_borders": split_borders}


def schedule_kernel(func, kernel: str = "", rules: tuple[str, ...] = SCHEDULE_RULES,
                    band_rows: int = BAND_ROWS, ring: bool = True):
    """Applies the default schedule to one fused PrimFunc.

    Args:
        func: a ``tvm.tirx.PrimFunc`` as FuseTIR leaves it (blocks with iterators).
        kernel: kernel name, for the debug log.
        rules: which of `SCHEDULE_RULES` to apply, in order.
        band_rows: output rows per band of a fused inverted residual (scheduled by
            `compiler.codegen.row_bands` instead of the rules: a kernel named like
            `FUSED_KERNEL`).
        ring: keep a fused inverted residual's expanded rows in a ring buffer. Its
            buffers are the same size either way, so a caller that only needs the
            kernel's scratch (plan-only) can skip the ring's TVMScript round trip.

    Returns:
        The scheduled PrimFunc, with the attributes of `func`; `func` itself when it has
        no block structure to schedule.

    Raises:
        ValueError: an unknown rule name.

    Example:
        >>> scheduled = schedule_kernel(mod["fused_conv2d_add"], "fused_conv2d_add")  # doctest: +SKIP
    """
    import tvm
    from tvm import s_tir
    from tvm.s_tir.schedule import ScheduleError

    unknown = [r for r in rules if r not in _RULE_FUNCS]
    if unknown:
        raise ValueError(f"unknown schedule rule(s) {unknown}; valid: {list(SCHEDULE_RULES)}")
    try:
        sch = s_tir.Schedule(tvm.IRModule({"main": func}))
        top_level_blocks(sch)
    except (AttributeError, RuntimeError) as err:  # no root block; TVM errors are RuntimeErrors
        log.debug("schedule %s: not a schedulable block PrimFunc, left as is: %s", kernel, err)
        return func
    if kernel.startswith("patch"):
        from compiler.codegen.patches import PATCH_KERNEL, schedule_patch_stage

        scheduled = schedule_patch_stage(func, kernel) if PATCH_KERNEL.match(kernel) else None
        if scheduled is not None:
            return scheduled
    if FUSED_KERNEL.match(kernel):
        from compiler.codegen.row_bands import schedule_inverted_residual

        scheduled = schedule_inverted_residual(func, kernel, band_rows, ring)
        if scheduled is not None:
            return scheduled
    for rule in rules:
        backup = sch.copy()
        try:
            _RULE_FUNCS[rule](sch, kernel)
        except ScheduleError as err:  # a primitive outside `try_primitive`: drop this rule's edits
            log.debug("schedule %s: rule %s failed, rule undone: %s", kernel, rule, err)
            sch = backup
    return sch.mod["main"]
