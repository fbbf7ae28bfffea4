"""The schedule of a patch stage: the head of a network computed in n x n spatial tiles.

`compiler.passes.patch_stage` makes the high-resolution head (model input → split
tensor) one PrimFunc named ``patch<i>_n<n>_...``; `schedule_kernel` hands it to
`schedule_patch_stage`:

1. every elementwise block is inlined except the int8 tensors between layers (the
   *stages*) and the output: pads fold into the reads (zero-point padding at the image
   border only: a patch border reads the neighbouring rows, computed as halo),
   requantization into the stage that stores it;
2. the output's rows and columns are split into ``n`` tiles each and the loops become
   (row tile, column tile, channel, row, column);
3. from the output inwards, each stage is ``compute_at`` the column-tile loop (TVM infers
   the region the tile needs from the consumers' reads: the receptive field, clipped
   to the tensor), and each convolution's accumulator under its stage's row loop (one
   row of int32), its reduction loops outside the column loop.

Each step is a schedule primitive, so the numbers are those of the layer kernels bit
for bit. After TVM's buffer compaction each stage is one patch's region: the kernel's
scratch. Returns None when the kernel does not have that structure (the default rules
then apply: correct, with full-size intermediates).
"""

from __future__ import annotations

import logging
import re

from compiler.codegen.sblocks import is_reduction, top_level_blocks, try_primitive

log = logging.getLogger(__name__)

PATCH_KERNEL = re.compile(r"^patch\d+_n(\d+)_")
"""Name of a patch-stage kernel; the group is the patch count per side."""


def _dtype(sch, block) -> str:
    return str(sch.get(block).writes[0].source.dtype)


def _is_stage(sch, block) -> bool:
    """An int8 tensor computed from wider integers (a requantized layer output), not a
    copy of int8 data (a pad)."""
    reads = [r.source.dtype for r in sch.get(block).reads]
    return _dtype(sch, block) == "int8" and any(str(d) != "int8" for d in reads)


def _accumulate(sch, kernel: str, block) -> None:
    """The reduction loops of `block` outside its innermost (column) loop; init hoisted."""
    from compiler.codegen.row_bands import _accumulate_row

    _accumulate_row(sch, kernel, block)


def _overlap_last_tile(sch, output: str, extents: tuple[int, int], uneven: int):
    """A schedule whose last row (column) tile ends at the tensor's edge, overlapping the
    one before, when the tile size does not divide the extent.

    ``split`` leaves a predicate ``tile * size + i < extent`` on the output, which keeps
    TVM's buffer compaction from shrinking the stages to one tile (their regions are no
    longer of constant size). The tile origin becomes ``min(tile * size, extent - size)``
    instead: every tile is whole, the last one recomputes (and rewrites, with the same
    values) what it shares with the one before. The output block's bindings are edited
    on the TVMScript, which TVM parses back; when fewer than the `uneven` axes are
    found there, `sch` is returned as it was (correct, with full-size stages).
    """
    import tvm
    from tvm import s_tir
    from tvm.script import from_source

    lines = sch.mod["main"].script().splitlines()
    start = next(i for i, line in enumerate(lines) if f'T.sblock("{output}")' in line)
    changed = 0
    for i in range(start + 1, len(lines)):
        line = lines[i]
        if "T.where(" in line:
            lines[i] = ""
            continue
        match = re.search(r"T\.axis\.spatial\(T\.int64\((\d+)\), (\w+) \* T\.int64\((\d+)\) \+ ",
                          line)
        if match and int(match.group(1)) in extents and int(match.group(1)) % int(match.group(3)):
            extent, var, size = int(match.group(1)), match.group(2), int(match.group(3))
            origin = f"T.min({var} * T.int64({size}), T.int64({extent - size}))"
            lines[i] = line.replace(f"{var} * T.int64({size}) + ", f"{origin} + ", 1)
            changed += 1
        if "T.writes(" in line:
            break
    if changed != uneven:
        log.warning("patch stage %s: uneven tiles not made to overlap; its stages stay "
                    "full size", output)
        return sch
    parsed = from_source("\n".join(line for line in lines if line))
    func = parsed["main"] if hasattr(parsed, "functions") else parsed
    return s_tir.Schedule(tvm.IRModule({"main": func}))


def tile_patches(sch, kernel: str, n: int):
    """Schedules `sch` (a patch-stage PrimFunc) in `n` x `n` tiles (module docstring).

    Returns:
        The schedule (a new one when the last tiles overlap), or None when the
        structure is not a chain of convolutions and stages.
    """
    output = top_level_blocks(sch)[-1]
    output_name = sch.get(output).name_hint
    progress = True
    while progress:  # inline all but reductions, stages and the output
        progress = False
        for block in top_level_blocks(sch):
            name = sch.get(block).name_hint
            if name == output_name or is_reduction(sch, block) or _is_stage(sch, block):
                continue
            if try_primitive(kernel, "compute_inline", name, lambda b=block: sch.compute_inline(b)):
                progress = True
                break
    out_loops = sch.get_loops(sch.get_sblock(output_name))
    if len(out_loops) != 4:
        return None
    batch, channel, row, col = out_loops
    rows, cols = int(sch.get(row).extent), int(sch.get(col).extent)
    row_tile, row_in = sch.split(row, [min(n, rows), None])
    col_tile, col_in = sch.split(col, [min(n, cols), None])
    sch.reorder(row_tile, col_tile, batch, channel, row_in, col_in)
    uneven = sum(extent % int(sch.get(inner).extent) != 0
                 for extent, inner in ((rows, row_in), (cols, col_in)))
    if uneven:
        sch = _overlap_last_tile(sch, output_name, (rows, cols), uneven)
    row_tile, col_tile = sch.get_loops(sch.get_sblock(output_name))[:2]
    names = [sch.get(b).name_hint for b in top_level_blocks(sch)][:-1]
    for name in reversed(names):
        block = sch.get_sblock(name)
        if is_reduction(sch, block):
            consumers = list(sch.get_consumers(block))
            if len(consumers) != 1:
                return None
            consumer_loops = sch.get_loops(consumers[0])
            sch.compute_at(block, consumer_loops[-2])
            _accumulate(sch, kernel, block)
        elif _is_stage(sch, block):
            sch.compute_at(block, col_tile)
        else:
            return None
    return sch


def stage_rings(sch) -> list[tuple[str, int, int]]:
    """Per stage of a `tile_patches` schedule: its buffer and the rows and columns one
    patch computes (the extents of its two inner loops, at most the tensor's)."""
    rings = []
    for block in _stage_blocks(sch):
        buffer = sch.get(block).writes[0].source
        loops = sch.get_loops(block)
        rows, cols = (int(sch.get(loop).extent) for loop in loops[-2:])
        rings.append((buffer.name, min(rows, int(buffer.shape[2])),
                      min(cols, int(buffer.shape[3]))))
    return rings


def _stage_blocks(sch) -> list:
    root = sch.get_sblock(sch.mod["main"].body.block.name_hint)
    temps = {b.name for b in sch.get(root).alloc_buffers}
    out = []
    for block in top_level_blocks(sch):  # every block of the root's scope, loops or not
        if _is_stage(sch, block) and sch.get(block).writes[0].source.name in temps:
            out.append(block)
    return out


def ring_stages(func, rings: list[tuple[str, int, int]]):
    """`func` with each stage buffer one patch in size: ``rows x cols`` of `rings`, its
    row and column indices taken modulo those.

    TVM's buffer compaction shrinks a stage to one patch only when its region has a
    constant size; where a patch's region is clipped at both ends of the tensor (a
    padded conv reading past the last row) it keeps the whole tensor. Within one patch a
    stage's rows and columns are a window of at most `rings` extents, so the modulo maps
    them one to one; the next patch overwrites the buffer after this one has read it.
    The rewrite is made on the TVMScript (`compiler.codegen.row_bands` rolls its rows
    the same way), which TVM parses back.
    """
    from tvm.script import from_source

    from compiler.codegen.row_bands import _closing, _ring_indices, _split_top

    lines = []
    for line in func.script().splitlines():
        stripped = line.strip()
        if stripped.startswith(("T.reads(", "T.writes(")):
            continue  # access regions are inferred again by the parser
        for buffer, rows, cols in rings:
            alloc = f"{buffer} = T.sblock_alloc_buffer(("
            if stripped.startswith(alloc):
                start = line.index(alloc) + len(alloc)
                end = _closing(line, start, "(", ")")
                dims = _split_top(line[start:end - 1])
                dims[2], dims[3] = f" T.int64({rows})", f" T.int64({cols})"
                line = line[:start] + ",".join(dims) + line[end - 1:]
            else:
                line = _ring_indices(_ring_indices(line, buffer, 2, rows), buffer, 3, cols)
        lines.append(line)
    parsed = from_source("\n".join(lines))
    return parsed["main"] if hasattr(parsed, "functions") else parsed


def schedule_patch_stage(func, kernel: str):
    """`func` (a patch-stage PrimFunc named like `PATCH_KERNEL`) scheduled in patches.

    Returns:
        The scheduled PrimFunc, or None when it cannot be scheduled so (logged).
    """
    import tvm
    from tvm import s_tir
    from tvm.s_tir.schedule import ScheduleError

    match = PATCH_KERNEL.match(kernel)
    if match is None:
        raise ValueError(f"{kernel!r} is not a patch-stage kernel name")
    sch = s_tir.Schedule(tvm.IRModule({"main": func}))
    try:
        scheduled = tile_patches(sch, kernel, int(match.group(1)))
    except ScheduleError as err:
        log.warning("schedule %s: patches failed, default rules instead: %s", kernel,
                    str(err).strip().splitlines()[-1])
        return None
    if scheduled is None:
        log.warning("schedule %s: not a chain of convolutions, default rules instead", kernel)
        return None
    return ring_stages(scheduled.mod["main"], stage_rings(scheduled))
