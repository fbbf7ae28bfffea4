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

Each rule is tried block by block: a ``ScheduleError`` (an unexpected PrimFunc structure)
skips that block for that rule, logged at debug level, and the kernel keeps its
unscheduled form there. The schedule never changes what is computed, only the loop
structure and where temporaries live, so the numbers are the same bit for bit.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable

log = logging.getLogger(__name__)

SCHEDULE_RULES: tuple[str, ...] = ("inline_elementwise", "fuse_epilogues")
"""Rule names in the order `schedule_kernel` applies them."""

ACCUMULATOR_BYTES = 512
"""Largest accumulator `fuse_epilogues` keeps (a stack array in the generated C; TVM
turns arrays of 1 KiB or more into workspace scratch)."""


def _is_reduction(sch, block) -> bool:
    """The block has a reduction iterator (conv / matmul / pooling accumulators)."""
    from tvm import tirx

    return any(iv.iter_type == tirx.IterVar.CommReduce for iv in sch.get(block).iter_vars)


def _top_level_blocks(sch) -> list:
    """The blocks directly under the PrimFunc's root block, in program order."""
    root = sch.get_sblock(sch.mod["main"].body.block.name_hint)
    return list(sch.get_child_blocks(root))


def _try(kernel: str, rule: str, block_name: str, action: Callable[[], object]) -> bool:
    """Runs one schedule primitive; a ScheduleError is logged and reported as False."""
    from tvm.s_tir.schedule import ScheduleError

    try:
        action()
    except ScheduleError as err:
        lines = str(err).strip().splitlines()
        log.debug("schedule %s: rule %s skipped block %s: %s", kernel, rule, block_name,
                  lines[-1] if lines else type(err).__name__)
        return False
    return True


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
        for block in _top_level_blocks(sch):
            if _is_reduction(sch, block):
                continue
            writes_temp = all(any(w.source.same_as(t) for t in temps)
                              for w in sch.get(block).writes)
            if primitive == "compute_inline" and writes_temp:
                yield block
            if primitive == "reverse_compute_inline":
                producers = list(sch.get_producers(block))
                if len(producers) == 1 and not _is_reduction(sch, producers[0]):
                    yield block

    inlined = 0
    for primitive in ("compute_inline", "reverse_compute_inline"):
        apply = getattr(sch, primitive)
        progress = True
        while progress:
            progress = False
            for block in candidates(primitive):
                name = sch.get(block).name_hint
                if _try(kernel, primitive, name, lambda b=block, f=apply: f(b)):
                    inlined += 1
                    progress = True
                    break  # block handles are stale once the tree changed
    return inlined


def _spatial_prefix(sch, block) -> tuple[list, list]:
    """Splits the loops above `block` into the outer spatial ones and the rest.

    A loop is a reduction loop when its variable appears in the binding of a reduction
    iterator; the spatial prefix ends at the first such loop.
    """
    from tvm import tirx
    from tvm_ffi import get_global_func

    realize = get_global_func("s_tir.schedule.GetSBlockRealize")(sch, block)
    reduce_vars = set()
    for iv, value in zip(realize.block.iter_vars, realize.iter_values, strict=True):
        if iv.iter_type == tirx.IterVar.CommReduce:
            reduce_vars.update(tirx.analysis.undefined_vars(value))
    loops = list(sch.get_loops(block))
    for i, loop in enumerate(loops):
        if sch.get(loop).loop_var in reduce_vars:
            return loops[:i], loops[i:]
    return loops, []


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
    reductions = [sch.get(b).name_hint for b in _top_level_blocks(sch) if _is_reduction(sch, b)]
    fused = 0
    for name in reductions:
        block = sch.get_sblock(name)
        spatial, reduce = _spatial_prefix(sch, block)
        inner = _inner_spatial(sch, block, spatial, max_bytes) if reduce else 0
        consumers = list(sch.get_consumers(block))
        if len(consumers) > 1:
            log.debug("schedule %s: rule fuse_epilogues skipped block %s: %d consumers",
                      kernel, name, len(consumers))
        elif consumers and spatial:
            consumer = consumers[0]
            consumer_name = sch.get(consumer).name_hint
            ok = _try(kernel, "reverse_compute_at", consumer_name,
                      lambda c=consumer, loop=spatial[-1 - inner]: sch.reverse_compute_at(c, loop))
            if not ok and inner:  # e.g. the epilogue reads neighbouring rows: one element
                inner = 0
                ok = _try(kernel, "reverse_compute_at", consumer_name,
                          lambda c=consumer, loop=spatial[-1]: sch.reverse_compute_at(c, loop))
            fused += ok
        if inner:
            _try(kernel, "reorder", name,
                 lambda loops=(*reduce, *spatial[-inner:]): sch.reorder(*loops))
        if reduce:
            _try(kernel, "decompose_reduction", name,
                 lambda b=block, loop=reduce[0]: sch.decompose_reduction(b, loop))
    return fused


FUSED_KERNEL = re.compile(r"^irb\d+_")
"""Name of a fused inverted-residual kernel (`compiler.passes.fuse_inverted_residual`)."""

BAND_ROWS = 1
"""Output rows per band of `row_bands`: 1 gives the smallest buffers (the expanded rows the
depthwise needs, ``(k - 1) * dilation + 1``), more rows recompute fewer expanded rows."""


def _band_rows(extent: int, requested: int) -> int:
    """The largest divisor of `extent` not above `requested` (bands stay whole)."""
    return max(d for d in range(1, max(1, min(requested, extent)) + 1) if extent % d == 0)


def _sole_producer(sch, block):
    """The one block writing what `block` reads (function parameters aside), else None."""
    producers = list(sch.get_producers(block))
    return producers[0] if len(producers) == 1 else None


def _accumulate_row(sch, kernel: str, block) -> None:
    """Puts `block`'s reduction loops outside its innermost (column) loop; hoists the init.

    After ``compute_at`` a reduction covers one output row (or one element); with the
    reduction loops outside, the accumulator is one row of int32 and the inner loop walks
    contiguous input and output.
    """
    name = sch.get(block).name_hint
    spatial, reduce = _spatial_prefix(sch, block)
    if reduce and spatial:
        _try(kernel, "reorder", name, lambda: sch.reorder(*reduce, spatial[-1]))
    spatial, reduce = _spatial_prefix(sch, block)
    if reduce:
        _try(kernel, "decompose_reduction", name,
             lambda: sch.decompose_reduction(block, reduce[0]))


def row_bands(sch, kernel: str = "", band_rows: int = BAND_ROWS) -> int:
    """Schedules a fused inverted residual (expand → depthwise → project) in row bands.

    The kernel's reductions are the expand 1x1 conv (absent without expansion), the
    depthwise and the project 1x1 conv; the int8 tensors between them are kept, every
    other block is inlined. Then, from the output inwards:

    - the output loops become (row, channel, column), the rows split in bands of
      `band_rows`;
    - the project accumulates one output row of one channel under the channel loop;
    - the depthwise output (all expanded channels, one row) is computed under the row
      loop, its accumulator one row of one channel;
    - the (padded) expanded tensor is computed under the band loop: the
      ``(band_rows - 1) * stride + (k - 1) * dilation + 1`` rows the band's depthwise
      reads, each row from a one-row expand accumulator.

    No tensor of the block's expanded size remains: the largest buffer is those rows of
    the expanded tensor. The rows two bands share are computed again (the price of the
    small buffer: with one-row bands, a stride-1 3x3 block computes each expanded row
    three times).

    Args:
        sch: a `tvm.s_tir.Schedule` over a module with one function, ``main``.
        kernel: kernel name, for the debug log.
        band_rows: output rows per band (the largest divisor of the output height not
            above it).

    Returns:
        1 when the kernel was scheduled in bands, 0 when its structure is not that of a
        fused inverted residual (it is left for the other rules).
    """
    reductions = [b for b in _top_level_blocks(sch) if _is_reduction(sch, b)]
    if len(reductions) not in (2, 3):
        return 0
    names = [sch.get(b).name_hint for b in reductions]
    expand, dw, project = ([None] + names) if len(names) == 2 else names
    output = sch.get(_top_level_blocks(sch)[-1]).name_hint
    kept = {output}
    stage = _sole_producer(sch, sch.get_sblock(project))
    if stage is None:
        return 0
    kept.add(sch.get(stage).name_hint)
    if expand is not None:
        stage = _sole_producer(sch, sch.get_sblock(dw))
        if stage is None:
            return 0
        kept.add(sch.get(stage).name_hint)
    # Inline every elementwise block but the kept stages, from the direct producers of
    # the reductions backwards: pads fold into the reads, requantization into the stage.
    progress = True
    while progress:
        progress = False
        for block in _top_level_blocks(sch):
            name = sch.get(block).name_hint
            if name in kept or _is_reduction(sch, block):
                continue
            if _try(kernel, "compute_inline", name, lambda b=block: sch.compute_inline(b)):
                progress = True
                break
    expanded = sch.get(_sole_producer(sch, sch.get_sblock(dw))).name_hint if expand else None
    dw_out = sch.get(_sole_producer(sch, sch.get_sblock(project))).name_hint

    out_loops = sch.get_loops(sch.get_sblock(output))
    if len(out_loops) != 4:
        return 0
    _, channel, row, _ = out_loops
    sch.reorder(row, channel)
    rows = int(sch.get(row).extent)
    band = _band_rows(rows, band_rows)
    outer, inner = sch.split(row, [rows // band, band])
    sch.compute_at(sch.get_sblock(project), channel)
    _accumulate_row(sch, kernel, sch.get_sblock(project))
    sch.compute_at(sch.get_sblock(dw_out), inner)
    dw_channel = sch.get_loops(sch.get_sblock(dw_out))[-2]
    sch.compute_at(sch.get_sblock(dw), dw_channel)
    _accumulate_row(sch, kernel, sch.get_sblock(dw))
    if expanded is not None:
        sch.compute_at(sch.get_sblock(expanded), outer)
        expanded_row = sch.get_loops(sch.get_sblock(expanded))[-2]
        sch.compute_at(sch.get_sblock(expand), expanded_row)
        _accumulate_row(sch, kernel, sch.get_sblock(expand))
    return 1


_RULE_FUNCS: dict[str, Callable] = {"inline_elementwise": inline_elementwise,
                                    "fuse_epilogues": fuse_epilogues}


def schedule_kernel(func, kernel: str = "", rules: tuple[str, ...] = SCHEDULE_RULES,
                    band_rows: int = BAND_ROWS):
    """Applies the default schedule to one fused PrimFunc.

    Args:
        func: a ``tvm.tirx.PrimFunc`` as FuseTIR leaves it (blocks with iterators).
        kernel: kernel name, for the debug log.
        rules: which of `SCHEDULE_RULES` to apply, in order.
        band_rows: output rows per band of a fused inverted residual (`row_bands`, used
            instead of the rules for a kernel named like `FUSED_KERNEL`).

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
        _top_level_blocks(sch)
    except (AttributeError, RuntimeError) as err:  # no root block; TVM errors are RuntimeErrors
        log.debug("schedule %s: not a schedulable block PrimFunc, left as is: %s", kernel, err)
        return func
    if FUSED_KERNEL.match(kernel):
        backup = sch.copy()
        try:
            if row_bands(sch, kernel, band_rows):
                return sch.mod["main"]
        except ScheduleError as err:
            log.debug("schedule %s: row bands failed, default rules instead: %s", kernel, err)
        sch = backup
    for rule in rules:
        backup = sch.copy()
        try:
            _RULE_FUNCS[rule](sch, kernel)
        except ScheduleError as err:  # a primitive outside `_try`: drop this rule's edits
            log.debug("schedule %s: rule %s failed, rule undone: %s", kernel, rule, err)
            sch = backup
    return sch.mod["main"]
