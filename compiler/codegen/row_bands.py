"""The schedule of a fused inverted residual: row bands, the expanded rows in a ring buffer.

`compiler.passes.fuse_inverted_residual` makes each inverted residual one PrimFunc (expand
1x1 → kxk depthwise → project 1x1, + residual); `schedule_kernel` hands every kernel named
like `compiler.codegen.schedule.FUSED_KERNEL` to `schedule_inverted_residual`:

1. `row_bands` computes the block output row by output row (bands of ``band_rows``): per
   band the (padded) expanded rows the depthwise reads, then per output row the depthwise
   row of every expanded channel and the project row. Each stage is a schedule primitive
   (``compute_inline``, ``compute_at``, ``reorder``, ``decompose_reduction``), so the numbers
   are those of the unfused kernels bit for bit; the largest buffer is the
   ``(band_rows - 1) * stride + (k - 1) * dilation + 1`` expanded rows of one band.
2. `roll_expanded_rows` turns those rows into a ring buffer: the rows a band shares with
   the band before are kept instead of computed again. TVM's ``rolling_buffer`` primitive
   does exactly this but fails on int64 loop variables (its predicate compares them with
   int32 constants), and FuseTIR's PrimFuncs index in int64; so the same rewrite is made
   on the function's TVMScript, which TVM parses back (and checks): the buffer's row
   extent becomes the ring size, its row index ``floormod(row, ring)``, and every block
   under the band's row loop gets the predicate ``band == 0 or row >= overlap``.
3. `split_one_column_rows`: when the block's input is one column wide, the padded
   expanded row (``pad, value, pad``) is partitioned into its columns, so the C has no
   symbolic index into the one-element expand accumulator (which gcc's
   ``-Wmaybe-uninitialized`` cannot follow: an error under ``-Werror``).

When the ring cannot be made the kernel keeps step 1 (correct, with the shared rows
expanded again) and a warning names it.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from compiler.codegen.sblocks import is_reduction, spatial_prefix, top_level_blocks, try_primitive

log = logging.getLogger(__name__)

BAND_ROWS = 1
"""Output rows per band of a fused inverted residual."""


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
    spatial, reduce = spatial_prefix(sch, block)
    if reduce and spatial:
        try_primitive(kernel, "reorder", name, lambda: sch.reorder(*reduce, spatial[-1]))
    spatial, reduce = spatial_prefix(sch, block)
    if reduce:
        try_primitive(kernel, "decompose_reduction", name,
             lambda: sch.decompose_reduction(block, reduce[0]))


def row_bands(sch, kernel: str = "", band_rows: int = BAND_ROWS):
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
        The `ExpandedRows` of the band (what `roll_expanded_rows` needs), ``False`` when
        the block has no expand conv (its depthwise reads the block input itself), None
        when the kernel's structure is not that of a fused inverted residual.
    """
    reductions = [b for b in top_level_blocks(sch) if is_reduction(sch, b)]
    if len(reductions) not in (2, 3):
        return None
    names = [sch.get(b).name_hint for b in reductions]
    expand, dw, project = ([None] + names) if len(names) == 2 else names
    output = sch.get(top_level_blocks(sch)[-1]).name_hint
    kept = {output}
    stage = _sole_producer(sch, sch.get_sblock(project))
    if stage is None:
        return None
    kept.add(sch.get(stage).name_hint)
    if expand is not None:
        stage = _sole_producer(sch, sch.get_sblock(dw))
        if stage is None:
            return None
        kept.add(sch.get(stage).name_hint)
    # Inline every elementwise block but the kept stages, from the direct producers of
    # the reductions backwards: pads fold into the reads, requantization into the stage.
    progress = True
    while progress:
        progress = False
        for block in top_level_blocks(sch):
            name = sch.get(block).name_hint
            if name in kept or is_reduction(sch, block):
                continue
            if try_primitive(kernel, "compute_inline", name, lambda b=block: sch.compute_inline(b)):
                progress = True
                break
    expanded = sch.get(_sole_producer(sch, sch.get_sblock(dw))).name_hint if expand else None
    dw_out = sch.get(_sole_producer(sch, sch.get_sblock(project))).name_hint

    out_loops = sch.get_loops(sch.get_sblock(output))
    if len(out_loops) != 4:
        return None
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
    if expanded is None:
        return False
    sch.compute_at(sch.get_sblock(expanded), outer)
    expanded_row = sch.get_loops(sch.get_sblock(expanded))[-2]
    sch.compute_at(sch.get_sblock(expand), expanded_row)
    _accumulate_row(sch, kernel, sch.get_sblock(expand))
    block = sch.get_sblock(expanded)
    row_loop = sch.get_loops(block)[-2]
    ring = int(sch.get(row_loop).extent)
    return ExpandedRows(
        buffer=sch.get(block).writes[0].source.name, ring=ring,
        overlap=ring - band * _stride(kernel),
        band_var=sch.get(outer).loop_var.name, row_var=sch.get(row_loop).loop_var.name,
        blocks=tuple(sch.get(b).name_hint for b in sch.get_child_blocks(row_loop)))




@dataclass(frozen=True)
class ExpandedRows:
    """The expanded rows one band computes, as `row_bands` leaves them.

    Attributes:
        buffer: the (padded) expanded tensor's buffer name.
        ring: rows one band computes (the buffer's row extent after compaction).
        overlap: of those, rows the band before computed already.
        band_var: loop variable over bands.
        row_var: loop variable over the band's expanded rows.
        blocks: the blocks under that row loop (expand accumulator, expanded row).
    """

    buffer: str
    ring: int
    overlap: int
    band_var: str
    row_var: str
    blocks: tuple[str, ...]


def _stride(kernel: str) -> int:
    """The depthwise stride from the fused kernel's name (``irb3_k3s2e96`` → 2)."""
    match = re.match(r"^irb\d+_k\d+s(\d+)", kernel)
    if match is None:
        raise ValueError(f"{kernel!r} is not a fused inverted-residual kernel name")
    return int(match.group(1))


def _split_top(text: str) -> list[str]:
    """`text` split at the commas outside any brackets."""
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += ch in "(["
        depth -= ch in ")]"
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    return [*parts, current]


def _closing(text: str, start: int, opening: str, closing: str) -> int:
    """Index just past the bracket closing the one opened before `start`."""
    depth, i = 1, start
    while depth:
        depth += (text[i] == opening) - (text[i] == closing)
        i += 1
    return i


def _ring_indices(line: str, buffer: str, axis: int, ring: int) -> str:
    """Every ``buffer[...]`` access of `line` with index `axis` taken modulo `ring`."""
    pattern = re.compile(rf"\b{re.escape(buffer)}\[")
    out, pos = [], 0
    for match in pattern.finditer(line):
        if match.start() < pos:
            continue
        end = _closing(line, match.end(), "[", "]")
        indices = _split_top(line[match.end():end - 1])
        indices[axis] = f" T.floormod({indices[axis].strip()}, T.int64({ring}))"
        out.append(line[pos:match.end()] + ",".join(indices).lstrip() + "]")
        pos = end
    return "".join(out) + line[pos:]


_AXIS = re.compile(r"^[\w, ]+= T\.axis\.")


def roll_expanded_rows(func, rows: ExpandedRows, axis: int = 2):
    """`func` with the expanded rows of `rows` in a ring buffer (see the module docstring).

    Args:
        func: the PrimFunc as `row_bands` scheduled it.
        rows: what `row_bands` returned for it.
        axis: the buffer's row axis (NCHW: 2).

    Returns:
        The rewritten PrimFunc (parsed back from TVMScript, so checked by TVM's parser);
        `func` itself when the bands share no row (``overlap <= 0``).
    """
    from tvm.script import from_source

    if rows.overlap <= 0:
        return func
    predicate = (f"({rows.band_var} < T.int64(1) or "
                 f"T.int64({rows.overlap}) <= {rows.row_var})")
    lines, pending, anchor = [], False, None
    for line in func.script().splitlines():
        stripped = line.strip()
        if stripped.startswith(("T.reads(", "T.writes(")):
            continue  # access regions are inferred again by the parser
        loop = re.match(r"\s*for ([\w, ]+) in ", line)
        if anchor and loop and rows.band_var in [v.strip() for v in loop.group(1).split(",")]:
            indent = line[:len(line) - len(line.lstrip())]
            lines += [f"{indent}{text}" for text in anchor]
            anchor = None
        block = re.match(r'\s*with T\.sblock\("(\w+)"\):', line)
        if block:
            pending = block.group(1) in rows.blocks
        elif pending and not _AXIS.match(stripped):
            pending = False
            if stripped.startswith("T.where("):
                line = line.replace("T.where(", f"T.where({predicate} and (", 1) + ")"
            else:
                indent = line[:len(line) - len(line.lstrip())]
                lines.append(f"{indent}T.where{predicate}")
        alloc = f"{rows.buffer} = T.sblock_alloc_buffer(("
        if stripped.startswith(alloc):
            start = line.index(alloc) + len(alloc)
            end = _closing(line, start, "(", ")")
            dims = _split_top(line[start:end - 1])
            dims[axis] = f" T.int64({rows.ring})"
            anchor = _ring_anchor(rows.buffer, len(dims), line[end:])
            line = line[:start] + ",".join(dims) + line[end - 1:]
        lines.append(_ring_indices(line, rows.buffer, axis, rows.ring))
    if anchor is not None:
        raise ValueError(f"no loop over bands ({rows.band_var}) found for the ring's anchor")
    parsed = from_source("\n".join(lines))
    return parsed["main"] if hasattr(parsed, "functions") else parsed


def _ring_anchor(buffer: str, rank: int, alloc_tail: str) -> list[str]:
    """TVMScript of one store into the ring before the band loop (its first element).

    The ring's rows must outlive a band: the next band reads the rows they share. TVM
    allocates a buffer at the innermost scope holding every access to it
    (``PlanAndUpdateBufferAllocationLocation``); with all accesses inside the band loop,
    that is the loop body, a fresh buffer per band, whose memory ``StorageRewrite`` may
    then give to a buffer written later in the band (it did: the depthwise output row
    over a one-column ring, corrupting the shared rows). A store outside the loop puts
    the allocation around it. Band 0 computes every row of the ring, so the stored value
    is never read.
    """
    dtype = re.search(r'"(\w+)"', alloc_tail)
    zeros = ", ".join(["T.int64(0)"] * rank)
    return [f'with T.sblock("{buffer}_ring_anchor"):',
            f'    {buffer}[{zeros}] = T.Cast("{dtype.group(1) if dtype else "int8"}", 0)']


def schedule_inverted_residual(func, kernel: str, band_rows: int = BAND_ROWS,
                               ring: bool = True):
    """`row_bands`, then `roll_expanded_rows`: the fused kernel's scheduled PrimFunc.

    Args:
        func: the fused kernel's PrimFunc as FuseTIR made it.
        kernel: its name (``irb<i>_k<k>s<stride>...``).
        band_rows: output rows per band.
        ring: apply `roll_expanded_rows` (the buffers are the same size without it; only
            the rows shared by two bands are then expanded again).

    Returns:
        The scheduled PrimFunc (one-column rows split, `split_one_column_rows`), or None
        when `func` is not a fused inverted residual that `row_bands` can schedule (the
        default rules then apply to it).
    """
    import tvm
    from tvm import s_tir
    from tvm.s_tir.schedule import ScheduleError

    sch = s_tir.Schedule(tvm.IRModule({"main": func}))
    try:
        rows = row_bands(sch, kernel, band_rows)
    except ScheduleError as err:
        log.debug("schedule %s: row bands failed, default rules instead: %s", kernel, err)
        return None
    if rows is None:
        return None
    scheduled = sch.mod["main"]
    if rows is False:
        return scheduled
    if ring:
        try:
            scheduled = roll_expanded_rows(scheduled, rows)
        except Exception as err:  # noqa: BLE001 - any parse failure keeps the correct bands
            log.warning("schedule %s: expanded rows not rolled (%s: %s); rows shared by two "
                        "bands are expanded again", kernel, type(err).__name__, err)
    return split_one_column_rows(scheduled, rows, kernel)


def split_one_column_rows(func, rows: ExpandedRows, kernel: str = ""):
    """`func` with a one-column expanded row partitioned (`border_split.split_single_column`).

    A block whose input is one column wide pads each expanded row to ``pad, value, pad``;
    left whole, the generated C fails gcc's ``-Werror`` (``-Wmaybe-uninitialized`` on
    the one-element expand accumulator). Wider rows come back unchanged.
    """
    import tvm
    from tvm import s_tir

    from compiler.codegen.border_split import split_single_column

    sch = s_tir.Schedule(tvm.IRModule({"main": func}))
    for name in rows.blocks:
        block = sch.get(sch.get_sblock(name))
        if any(w.source.name == rows.buffer for w in block.writes):
            return sch.mod["main"] if split_single_column(sch, name, kernel) else func
    return func
