"""Schedule rule `split_borders`: a padded conv's inner loop split into border and interior.

A conv or pool reads its padding (zeros, or the input's zero point) inside its own kernel:
`compiler.codegen.schedule.inline_elementwise` inlines the pad into the read, which
becomes ``if (inside) x[...] else pad_value`` on every tap. After `fuse_epilogues` the
innermost loop of each reduction walks one output row (``acc[x] += in[y + ky, x + kx] ·
w``). Only its first and last few iterations can read outside the input, so the rule
partitions that loop (``loop_partition``) into a left border, an interior and a right
border. In the interior the column test is provably true for every tap, and TVM's
simplifier removes it: the interior loop reads the input unconditionally, like a conv
over a padded copy, without the copy. The row test stays (it does not depend on the
inner loop) and the border iterations keep both tests.

The loop structure changes, the arithmetic does not: outputs stay bit-identical.
"""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)

MIN_INTERIOR = 0.75
"""Smallest interior, as a fraction of the row, worth a split. Measured on Cortex-M4 (QEMU,
squeezenas-small max at 64x128, 5x5 depthwise convs): with 8-column rows (interior 4) the
split kernel ran 10 % slower, three short loops per tap costing more set-up than the
column tests they save; with 16 columns (interior 12) it ran 4 % faster, with 32 (28) 9 %."""


def _bounds_tests(sch, block, loop_var) -> tuple[list, dict]:
    """In-bounds tests of the block's reads that move with ``loop_var``, and the bindings.

    A padded read ``if (inside) x[i] else pad`` declares its region as ``x[i]``; the
    read is inside exactly when every such index lies in ``[0, shape)``. Returns the
    tests ``0 <= i`` / ``i < shape`` of the indices that depend on the loop (in block
    iterators) and the block iterators' bindings (to loop variables).
    """
    from tvm import tirx
    from tvm_ffi import get_global_func

    realize = get_global_func("s_tir.schedule.GetSBlockRealize")(sch, block)
    binding = [(iv.var, value) for iv, value in zip(realize.block.iter_vars,
                                                    realize.iter_values, strict=True)]
    moving = [var for var, value in binding
              if any(v.same_as(loop_var) for v in tirx.analysis.undefined_vars(value))]
    written = [w.source for w in realize.block.writes]
    tests = []
    for read in realize.block.reads:
        if any(read.source.same_as(w) for w in written):
            continue
        for rng, size in zip(read.region, read.source.shape, strict=True):
            if not any(any(v.same_as(m) for m in moving)
                       for v in tirx.analysis.undefined_vars(rng.min)):
                continue
            tests += [rng.min >= 0, rng.min + rng.extent <= size]
    return tests, binding


def _interior(tests, bindings: list, inner_var, extent: int, ranges: dict) -> tuple[int, int]:
    """``[lo, hi)``: the iterations of the inner loop where every test holds for every tap."""
    import tvm

    def holds(i: int) -> bool:
        analyzer = tvm.sym.Analyzer()
        for var, rng in ranges.items():
            analyzer.bind(var, rng)
        analyzer.bind(inner_var, tvm.ir.Range.from_min_extent(i, 1))
        for var, value in bindings:
            analyzer.bind(var, value)
        return all(analyzer.can_prove(t) for t in tests)

    lo = 0
    while lo < extent and not holds(lo):
        lo += 1
    hi = extent
    while hi > lo and not holds(hi - 1):
        hi -= 1
    return lo, hi


def _inner_interior(sch, block) -> tuple[object, int, int, int] | None:
    """``(loop, lo, hi, extent)`` of the block's innermost loop, None without padded reads.

    ``[lo, hi)`` are the iterations where every read moving with the loop is inside its
    input for every value of the outer loops (`_interior`).
    """
    import tvm

    loops = list(sch.get_loops(block))
    if not loops:
        return None
    inner = sch.get(loops[-1])
    if not isinstance(inner.extent, tvm.tirx.IntImm):
        return None
    tests, bindings = _bounds_tests(sch, block, inner.loop_var)
    if not tests:
        return None
    ranges = {sch.get(lp).loop_var: tvm.ir.Range.from_min_extent(sch.get(lp).min,
                                                                 sch.get(lp).extent)
              for lp in loops[:-1]}
    extent = int(inner.extent)
    lo, hi = _interior(tests, bindings, inner.loop_var, extent, ranges)
    return loops[-1], lo, hi, extent


def _partition(sch, loop, lo: int, hi: int, extent: int) -> None:
    """``loop_partition`` of ``loop`` into ``[0, lo)``, ``[lo, hi)`` and ``[hi, extent)``."""
    factors = ([lo] if lo else []) + ([hi - lo] if hi < extent else []) + [None]
    sch.loop_partition(loop, factors)


def split_borders(sch, kernel: str = "") -> int:
    """Partitions the innermost loop of each padded reduction into border / interior / border.

    Args:
        sch: a `tvm.s_tir.Schedule` over a module with one function, ``main``, after
            `compiler.codegen.schedule.fuse_epilogues`.
        kernel: kernel name, for the debug log.

    Returns:
        How many loops were partitioned.
    """
    from tvm.s_tir.schedule import ScheduleError

    from compiler.codegen.sblocks import is_reduction

    names = [sch.get(b).name_hint for b in sch.get_child_blocks(
        sch.get_sblock(sch.mod["main"].body.block.name_hint)) if is_reduction(sch, b)]
    split = 0
    for name in names:
        try:
            block = sch.get_sblock(name)
        except (ScheduleError, ValueError, RuntimeError):
            continue
        loops = list(sch.get_loops(block))
        if not loops or len(sch.get_child_blocks(loops[-1])) != 1:
            continue
        found = _inner_interior(sch, block)
        if found is None:
            continue
        loop, lo, hi, extent = found
        if (hi - lo) < MIN_INTERIOR * extent or (lo == 0 and hi == extent):
            continue  # nothing to split, or borders so wide that three loops cost more
        try:
            _partition(sch, loop, lo, hi, extent)
        except ScheduleError as err:
            log.debug("schedule %s: rule split_borders skipped block %s: %s", kernel, name,
                      str(err).strip().splitlines()[-1])
            continue
        split += 1
    return split


def split_single_column(sch, block_name: str, kernel: str = "") -> bool:
    """Partitions the block's row loop when exactly one column reads inside its input.

    For a padded row over a one-column input (``pad, x[0], pad``) TVM keeps the column
    index symbolic under its bounds test (``acc[ax - 1]`` inside ``if (1 <= ax && ax <
    2)``), and gcc, scalar-replacing the one-element accumulator it indexes, cannot match
    that test with the one guarding the accumulator's writes: ``-Wmaybe-uninitialized``,
    an error under the project's ``-Werror``. Partitioned, the middle loop runs once, so
    its column is a constant and its test is gone; the borders only store the padding.
    Rows with a wider interior are left as they are (`split_borders` decides for
    reductions, whose rows are measured).

    Args:
        sch: a `tvm.s_tir.Schedule`.
        block_name: the block whose innermost loop walks the padded row.
        kernel: kernel name, for the debug log.

    Returns:
        Whether the loop was partitioned.
    """
    from tvm.s_tir.schedule import ScheduleError

    try:
        found = _inner_interior(sch, sch.get_sblock(block_name))
    except (ScheduleError, ValueError, RuntimeError):
        return False
    if found is None:
        return False
    loop, lo, hi, extent = found
    if hi - lo != 1 or extent == 1:
        return False
    try:
        _partition(sch, loop, lo, hi, extent)
    except ScheduleError as err:
        log.debug("schedule %s: single-column split of block %s skipped: %s", kernel,
                  block_name, str(err).strip().splitlines()[-1])
        return False
    return True
