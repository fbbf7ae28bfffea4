"""Patch-based execution (MCUNetV2): the high-resolution head of a network as one tiled kernel.

The first layers of a segmentation network work at the highest resolution, so their
tensors set the arena (squeezenas-small's stem output is larger than everything after
it). This pass groups the head, from the model input up to a *split* tensor, into one
Relax function marked ``Primitive`` (like `compiler.passes.fuse_inverted_residual`:
the lowering's own bindings, moved, never rewritten), so ``FuseTIR`` makes it one
PrimFunc, named ``patch<i>_n<n>_<C>x<H>x<W>`` (``n``: patches per side; the split
tensor's shape). `compiler.codegen.patches` schedules it: the split tensor's rows and
columns are cut into ``n x n`` tiles and every layer of the head is computed under the
tile loop, for the region the tile needs (TVM infers it from the receptive field). The
input is read in place; only the split tensor and one patch's intermediates (kernel
scratch) are live. Neighbouring patches share halo rows and columns, computed once per
patch: the extra MACs, counted here exactly (`HeadGeometry.extra_macs`).

The head may hold any chain of int8 convolutions (any kernel, stride, dilation, groups,
zero-point padding folded in) and elementwise integer arithmetic, including whole
inverted residuals (this pass runs before `FuseInvertedResiduals`, which then fuses
the blocks after the split). A split is a point where only the split tensor is read
later. `choose_patches` picks the split and ``n`` that minimise the head kernel's live
bytes (model input + split tensor + one patch's intermediates) within a bound on the
extra MACs (`MAX_EXTRA_MACS`, a share of the model's MACs), preferring fewer extra MACs
where the rest of the network sets the arena anyway; it applies nothing when no
choice lowers the bound it estimates for the unpatched model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import tvm
from tvm import relax
from tvm.relax.expr_functor import mutator

from compiler.passes._common import dtype_of, is_op, shape_of
from compiler.passes.fuse_inverted_residual import (
    _ARITH,
    _conv_args,
    _conv_tag,
    _Fuser,
    _Graph,
    _grouped_function,
    _key,
    find_inverted_residuals,
)

PATCH_PREFIX = "patch"
"""Name prefix of the patch-stage function (and kernel): ``patch<i>_n<n>_<C>x<H>x<W>``."""

MAX_EXTRA_MACS = 0.10
"""Largest share of the model's MACs the halos may add (``--optimise size``)."""

MAX_PATCHES = 8
"""Most patches per side tried."""

MIN_RESOLUTION = 8
"""A split tensor is at most this many times smaller than the input, per side: below
that the head's tensors are small and patches do not pay."""

ALIGN = 16


@dataclass(frozen=True)
class ConvGeometry:
    """Spatial geometry of one convolution: kernel, stride, dilation, top/left padding."""

    kernel: tuple[int, int]
    stride: tuple[int, int]
    dilation: tuple[int, int]
    pad: tuple[int, int]
    macs_per_pixel: int

    def input_range(self, axis: int, lo: int, hi: int, size: int | None) -> tuple[int, int]:
        """Input rows (axis 0) or columns (1) the output range ``[lo, hi)`` reads, within
        ``[0, size)`` (the rest is padding, read as the zero point; None: unclipped)."""
        start = lo * self.stride[axis] - self.pad[axis]
        stop = (hi - 1) * self.stride[axis] - self.pad[axis] + \
            (self.kernel[axis] - 1) * self.dilation[axis] + 1
        return (start, stop) if size is None else (max(0, start), min(size, stop))


def conv_geometry(graph: _Graph, var: relax.Var) -> ConvGeometry:
    """The `ConvGeometry` of the conv bound to `var` (a ``relax.nn.conv2d`` or the tagged
    ``call_tir`` of a zero-point-padded conv)."""
    value = graph.value(var)
    x, w = _conv_args(value)
    c_out, c_per_group, kh, kw = graph.shape(w)
    tag = _conv_tag(value, graph.mod)
    if tag is None:
        attrs = value.attrs
        tag = {"strides": list(attrs.strides), "dilation": list(attrs.dilation),
               "padding": list(attrs.padding)}
    strides = tuple(int(s) for s in tag["strides"])
    dilation = tuple(int(d) for d in tag["dilation"])
    padding = tuple(int(p) for p in tag["padding"])
    return ConvGeometry((kh, kw), strides, dilation, padding[:2], c_out * c_per_group * kh * kw)


def _nbytes(var: relax.Expr) -> int:
    return math.prod(shape_of(var)) * tvm.DataType(dtype_of(var)).bits // 8


def _aligned(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def tiles(extent: int, n: int) -> list[tuple[int, int]]:
    """The ``[lo, hi)`` ranges of the `n` tiles over `extent` the schedule makes
    (`compiler.codegen.patches`): ``ceil(extent / n)`` each; when that does not divide
    `extent`, the last tiles end at the edge and overlap the ones before."""
    n = min(n, extent)
    size = -(-extent // n)
    return [(min(i * size, extent - size), min(i * size, extent - size) + size)
            for i in range(n)]


@dataclass(frozen=True)
class _Step:
    """One binding of a head in plain Python (TVM's accessors are slow in the search).

    Attributes:
        key: the binding's `_key`.
        shape: its (N, C, H, W).
        stage: an int8 tensor a patch keeps (not a pad).
        reads: per tensor it reads, ``(key, how, (H, W) of that tensor)``; `how` is the
            conv's `ConvGeometry`, ``(top, left)`` of a pad, or None (same pixels).
    """

    key: int
    shape: tuple[int, ...]
    stage: bool
    reads: tuple[tuple[int, object, tuple[int, int]], ...]


def _step(graph: _Graph, var: relax.Var, convs: dict) -> _Step:
    value = graph.value(var)
    pad = is_op(value, "relax.nn.pad")
    if _key(var) in convs:
        x = _conv_args(value)[0]
        reads = ((_key(x), convs[_key(var)], graph.shape(x)[2:]),)
    elif pad:
        x = value.args[0]
        reads = ((_key(x), tuple(int(value.attrs.pad_width[i]) for i in (4, 6)),
                  graph.shape(x)[2:]),)
    else:
        pixels = graph.shape(var)[2:]
        shapes = [(v, graph.shape(v)) for v in graph.reads[_key(var)]]
        reads = tuple((_key(v), None, shape[2:]) for v, shape in shapes
                      if len(shape) == 4 and shape[2:] == pixels)
    stage = graph.dtype(var) == "int8" and not pad
    return _Step(_key(var), graph.shape(var), stage, reads)


@dataclass(frozen=True)
class HeadGeometry:
    """The bindings from the model input up to one split tensor, and their geometry.

    Attributes:
        bindings: the head's variables in program order.
        model_input: the model parameter the head reads.
        split: the split tensor (the head's output).
        convs: conv variable key → its `ConvGeometry`.
        steps: the bindings as `_Step`s.
    """

    graph: _Graph
    bindings: tuple[relax.Var, ...]
    model_input: relax.Var
    split: relax.Var
    convs: dict
    steps: tuple[_Step, ...]

    @property
    def block_input(self) -> relax.Var:
        """The kernel's one tensor parameter (`_grouped_function` reads this name)."""
        return self.model_input

    @property
    def output(self) -> relax.Var:
        """The kernel's output (`_grouped_function` reads this name)."""
        return self.split

    def ranges(self, axis: int, lo: int, hi: int,
               clip: bool = True) -> dict[int, tuple[int, int]]:
        """Per binding key: the rows (`axis` 0) or columns (1) of it one patch computes,
        when the patch covers ``[lo, hi)`` of the split tensor (the hull over its
        readers). Rows and columns are independent, so a patch's region is the product
        of its row and column ranges. ``clip=False``: the ranges as TVM's schedule
        loops cover them, reaching into the padding (the patch buffers' extents)."""
        need: dict[int, tuple[int, int]] = {self.steps[-1].key: (lo, hi)}
        for step in reversed(self.steps):
            rng = need.get(step.key)
            if rng is None:
                continue
            for key, how, size in step.reads:
                if isinstance(how, ConvGeometry):
                    a, b = how.input_range(axis, *rng, size[axis] if clip else None)
                elif how is not None:  # a pad: (top, left)
                    a, b = rng[0] - how[axis], rng[1] - how[axis]
                    if clip:
                        a, b = max(0, a), min(size[axis], b)
                else:
                    a, b = rng
                old = need.get(key)
                need[key] = (a, b) if old is None else (min(old[0], a), max(old[1], b))
        return need

    def _tile_ranges(self, n: int, clip: bool = True) -> tuple[list[dict], list[dict]]:
        _, _, h, w = self.steps[-1].shape
        return ([self.ranges(0, *t, clip) for t in tiles(h, n)],
                [self.ranges(1, *t, clip) for t in tiles(w, n)])

    def macs(self) -> int:
        """MACs of the head's convolutions computed once (layer by layer)."""
        shapes = {step.key: step.shape for step in self.steps}
        return sum(g.macs_per_pixel * math.prod(shapes[k][2:]) for k, g in self.convs.items())

    def patch_macs(self, n: int) -> int:
        """MACs of the head's convolutions in `n` x `n` patches, halos included."""
        rows, cols = self._tile_ranges(n)
        return sum(g.macs_per_pixel * sum(r[k][1] - r[k][0] for r in rows)
                   * sum(c[k][1] - c[k][0] for c in cols) for k, g in self.convs.items())

    def extra_macs(self, n: int) -> int:
        """MACs the halos of `n` x `n` patches add to the head (negative when the
        patches skip rows or columns no later layer reads)."""
        return self.patch_macs(n) - self.macs()

    def scratch_bytes(self, n: int) -> int:
        """Estimated kernel scratch of `n` x `n` patches: each int8 tensor a patch keeps
        (every int8 binding but pads and the split) as one patch's rows and columns
        (`compiler.codegen.patches.ring_stages`: the schedule's unclipped extents, at
        most the tensor's), 16-byte aligned."""
        rows, cols = self._tile_ranges(n, clip=False)
        total = 0
        for step in self.steps[:-1]:
            if step.stage:
                k = step.key
                _, c, h, w = step.shape
                total += _aligned(c * min(h, max(r[k][1] - r[k][0] for r in rows))
                                  * min(w, max(x[k][1] - x[k][0] for x in cols)))
        return total

    def live_bytes(self, n: int) -> int:
        """Estimated live bytes of the patch kernel: input, split tensor, scratch."""
        return (_aligned(_nbytes(self.model_input)) + _aligned(_nbytes(self.split))
                + self.scratch_bytes(n))


def _patchable(graph: _Graph, var: relax.Var) -> bool:
    value = graph.value(var)
    if not isinstance(value, relax.Call) or not isinstance(var.ty, relax.TensorType):
        return False
    shape = graph.shape(var)
    if len(shape) != 4 or shape[0] != 1:
        return False
    if graph.is_conv(var):
        return True
    return isinstance(value.op, tvm.ir.Op) and (value.op.name in _ARITH
                                                or value.op.name == "relax.nn.pad")


def find_heads(func: relax.Function, mod: tvm.IRModule | None = None,
               min_pixels: int = 0) -> list[HeadGeometry]:
    """Every head of `func` that can become a patch stage, shortest first.

    A head is the bindings from `func`'s one tensor input, in program order, while each
    is patchable (an int8 conv or elementwise integer arithmetic on 4-D tensors); it may
    end at an int8 tensor that is the only one of them read afterwards. Heads whose
    split tensor has fewer than `min_pixels` pixels are not listed (patches do not pay
    at low resolution).
    """
    params = [p for p in func.params if isinstance(p.ty, relax.TensorType)]
    if len(params) != 1 or len(params[0].ty.shape) != 4:
        return []
    graph = _Graph(func, mod)
    model_input = params[0]
    known = {_key(model_input)}
    # per known binding, how many of its readers are not known yet; `escaping`: those
    # with any (a tensor read after the head, so no split can come before it)
    unread = {_key(model_input): len(graph.users.get(_key(model_input), ()))}
    escaping = {k for k, n in unread.items() if n}
    bindings: list[relax.Var] = []
    heads: list[HeadGeometry] = []
    convs: dict[int, ConvGeometry] = {}
    steps: list[_Step] = []
    for k in sorted(graph.order, key=graph.order.__getitem__):
        var = graph.var[k]
        if not _patchable(graph, var):
            break
        reads = {_key(v) for v in graph.reads[k]}
        if not reads <= known:
            break
        bindings.append(var)
        known.add(k)
        unread[k] = len(graph.users.get(k, ()))  # its readers come after it
        if unread[k]:
            escaping.add(k)
        for m in reads:
            unread[m] -= 1
            if not unread[m]:
                escaping.discard(m)
        if graph.is_conv(var):
            convs[k] = conv_geometry(graph, var)
        steps.append(_step(graph, var, convs))
        if graph.dtype(var) != "int8" or math.prod(graph.shape(var)[2:]) < min_pixels:
            continue
        if escaping <= {k} and convs:
            heads.append(HeadGeometry(graph, tuple(bindings), model_input, var, dict(convs),
                                      tuple(steps)))
    return heads


def _conv_macs(graph: _Graph) -> int:
    total = 0
    for k in graph.order:
        if graph.is_conv(graph.var[k]):
            total += conv_geometry(graph, graph.var[k]).macs_per_pixel * math.prod(
                graph.shape(graph.var[k])[2:])
    return total


def step_sizes(func: relax.Function, graph: _Graph) -> dict[int, int]:
    """Per step of `graph`, keyed by its result: the bytes live at it at least.

    Each inverted residual counts as one step (its input and output live together, with
    the ring of expanded rows its fused kernel keeps), so does each conv with its epilogue and every other call with an int8/uint8 result
    (its int8 inputs and output); elementwise integer units are left out (fusion may
    merge them into the kernel before), so the largest never exceeds the planner's bound.
    """
    blocks = find_inverted_residuals(func, graph=graph)
    inner = {_key(v) for b in blocks for v in b.bindings} - {_key(b.output) for b in blocks}
    by_output = {_key(b.output): b for b in blocks}
    sizes = {}
    for k, value in graph.binds.items():
        var = graph.var[k]
        if (k in inner or not isinstance(var.ty, relax.TensorType)
                or not isinstance(value, relax.Call)):
            continue  # an alias (``gv = lv``) is no step
        if dtype_of(var) not in ("int8", "uint8"):
            continue
        ring = 0
        if k in by_output:
            block = by_output[k]
            leaves = [block.block_input]
            if block.has_expand:  # its ring of expanded rows, at least unpadded
                ring = _aligned(block.expanded * ((block.kernel - 1) * block.dilation + 1)
                                * block.in_shape[3])
        else:
            unit = graph.unit(var)
            if unit is not None and unit[2] is None:
                continue  # elementwise only: may be fused into the kernel before it
            leaves = unit[1] if unit is not None else graph.reads[k]
        tensors = {_key(var): var}
        for v in leaves:
            if isinstance(v.ty, relax.TensorType) and dtype_of(v) in ("int8", "uint8"):
                tensors[_key(v)] = v
        sizes[k] = sum(_aligned(_nbytes(v)) for v in tensors.values()) + ring
    return sizes


@dataclass(frozen=True)
class PatchChoice:
    """The split and patch count `choose_patches` picked, and what they cost."""

    head: HeadGeometry
    n: int
    extra_macs: int
    live_bytes: int
    unpatched_bytes: int

    @property
    def name(self) -> str:
        """The kernel name: ``patch0_n<n>_<C>x<H>x<W>``."""
        _, c, h, w = shape_of(self.head.split)
        return f"{PATCH_PREFIX}0_n{self.n}_{c}x{h}x{w}"


def choose_patches(func: relax.Function, mod: tvm.IRModule | None = None,
                   max_extra: float = MAX_EXTRA_MACS,
                   max_patches: int = MAX_PATCHES) -> PatchChoice | None:
    """The split and patch count minimising the estimated arena, or None.

    For each head (`find_heads`) and ``n`` in ``2..max_patches``, within
    ``extra_macs <= max_extra * model MACs``, the estimate is the larger of the patch
    kernel's live bytes and the largest `step_sizes` of the rest; ties go to fewer extra MACs. The
    unpatched estimate takes the head's own steps as they run today; a choice that does
    not beat it is not made.
    """
    params = [p for p in func.params if isinstance(p.ty, relax.TensorType)]
    pixels = math.prod(shape_of(params[0])[2:]) if len(params) == 1 else 0
    heads = find_heads(func, mod, min_pixels=pixels // MIN_RESOLUTION ** 2)
    if not heads:
        return None
    graph = heads[0].graph
    budget = max_extra * _conv_macs(graph)
    steps = step_sizes(func, graph)
    unpatched = max(steps.values())
    best = None
    for head in heads:
        inside = {_key(v) for v in head.bindings}
        rest = max([b for k, b in steps.items() if k not in inside], default=0)
        floor = _aligned(_nbytes(head.model_input)) + _aligned(_nbytes(head.split))
        if best is not None and max(floor, rest) > best[0][0]:
            continue  # even patches of one pixel would not beat the best so far
        _, _, h, w = shape_of(head.split)
        for n in range(2, min(max_patches, max(h, w)) + 1):
            extra = head.extra_macs(n)
            if extra > budget:
                break
            live = head.live_bytes(n)
            score = (max(live, rest), extra, live)
            if best is None or score < best[0]:
                best = (score, PatchChoice(head, n, extra, live, unpatched))
    if best is None or best[0][0] >= unpatched:
        return None
    return best[1]


class _PatchGrouper(_Fuser):
    def group(self, func: relax.Function, choice: PatchChoice) -> relax.Function:
        head = choice.head
        graph = head.graph  # the graph of `func`, which the head's choice read
        func_, args = _grouped_function(head, graph, choice.name)
        gv = self.add_function(func_, choice.name)
        self.skip |= {_key(v) for v in head.bindings} - {_key(head.split)}
        self.calls[_key(head.split)] = (gv, args)
        return self.visit_expr(func)


def patch_stages(model, max_extra: float | None = None, max_patches: int = MAX_PATCHES):
    """A memory technique (`compiler.techniques`): the head of `model` as one patch stage.

    Args:
        model: an integer-lowered `ImportedModel`.
        max_extra: bound on the halos' extra MACs, as a share of the model's MACs
            (None: `MAX_EXTRA_MACS`).
        max_patches: most patches per side tried.

    Returns:
        ``(model with the head grouped, (kernel name,) or (), extra MACs)``.
    """
    mod = model.mod
    if "main" not in [gv.name_hint for gv in mod.get_global_vars()]:
        return model, (), 0
    max_extra = MAX_EXTRA_MACS if max_extra is None else max_extra
    choice = choose_patches(mod["main"], mod, max_extra, max_patches)
    if choice is None:
        return model, (), 0
    return apply_patches(model, choice), (choice.name,), choice.extra_macs


def apply_patches(model, choice: PatchChoice):
    """`model` with the head of `choice` grouped into the patch-stage function
    ``choice.name`` (the bindings of `choice.head` must be those of ``model.mod``'s
    ``main``)."""
    grouper = mutator(_PatchGrouper)(model.mod)
    new_main = grouper.group(model.mod["main"], choice)
    out = grouper.finalize()
    out["main"] = new_main
    return model.with_module(out)
