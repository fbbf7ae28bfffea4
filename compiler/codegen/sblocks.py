"""The schedule rules' shared handling of a schedule's blocks.

`compiler.codegen.schedule`, `row_bands`, `patches` and `border_split` find blocks, tell
reductions apart and apply primitives that may fail the same way; this module holds that,
so none of them imports another for it. A skipped primitive is logged at debug level
under ``compiler.codegen.schedule``, the logger of every schedule decision.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

log = logging.getLogger("compiler.codegen.schedule")


def is_reduction(sch, block) -> bool:
    """The block has a reduction iterator (conv / matmul / pooling accumulators)."""
    from tvm import tirx

    return any(iv.iter_type == tirx.IterVar.CommReduce for iv in sch.get(block).iter_vars)


def top_level_blocks(sch) -> list:
    """The blocks directly under the PrimFunc's root block, in program order."""
    root = sch.get_sblock(sch.mod["main"].body.block.name_hint)
    return list(sch.get_child_blocks(root))


def try_primitive(kernel: str, rule: str, block_name: str, action: Callable[[], object]) -> bool:
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


def spatial_prefix(sch, block) -> tuple[list, list]:
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
