"""FuseInvertedResiduals: each int8 inverted residual becomes one kernel, scheduled in row bands.

After integer lowering an inverted residual (MobileNetV2 / MBConv / SqueezeNAS block) is a
chain of *units*, each one int8 tensor computed from int8 tensors through int32/int64
arithmetic:

    E = requant(conv1x1(X))              expand (absent for a block without expansion)
    E' = pad(E, zp)                      when the depthwise pads with a non-zero zero point
    D = requant(depthwise_kxk(E'))       any stride, dilation
    P = requant(conv1x1(D))              project
    Y = requant_add(X, P)                residual, when the block keeps its shape (X may be
                                         rescaled first, for a quantizer shared by both operands)

The pass groups each chain's bindings into one Relax function marked ``Primitive`` (the
form ``FuseOps`` gives its groups), so ``FuseTIR`` makes it one PrimFunc. The arithmetic is
the lowering's own bindings, moved, never rewritten: the fused kernel computes the same
numbers bit for bit. What changes is the schedule: `compiler.codegen.row_bands`
recognises the kernel by its name and computes it in bands of output rows. Per band it
computes the ``(band - 1) * stride + (k - 1) * dilation + 1`` rows of the (padded)
expanded tensor the depthwise reads, then per output row the depthwise row of every
expanded channel and the project row: the expanded and depthwise tensors never exist in
full. Rows shared by two bands are computed again; `extra_macs` counts them.

Each fused function is named ``irb<i>_<label>`` (its position and `InvertedResidual.label`);
``main`` lists them in its ``qanas.fused_blocks`` attribute, read back by `fused_blocks`.
"""

from __future__ import annotations

from dataclasses import dataclass

import tvm
from tvm import relax
from tvm.relax.expr import _update_type
from tvm.relax.expr_functor import PyExprMutator, mutator

from compiler import known_types
from compiler.passes._common import dtype_of, is_op, items, shape_of

FUSION_ATTR = "qanas.fusion"
"""Attribute of each grouped Relax function: the fused block's name (``irb3_k3s1e96_res``)."""

FUSED_PREFIX = "irb"
"""Name prefix of every fused inverted-residual function (and of its kernel)."""

_ARITH = frozenset({"relax.add", "relax.subtract", "relax.multiply", "relax.right_shift",
                    "relax.left_shift", "relax.bitwise_and", "relax.astype", "relax.clip"})


@dataclass(frozen=True)
class InvertedResidual:
    """One matched block: the bindings to group, its input and output, its shape.

    Attributes:
        bindings: the chain's variables in program order (all moved into the kernel).
        block_input: the int8 tensor the block reads (a parameter of the kernel).
        output: the int8 tensor the block returns.
        kernel: depthwise kernel size.
        stride: depthwise stride.
        dilation: depthwise dilation.
        expanded: channels of the depthwise stage.
        has_expand: the block has a 1x1 expand conv.
        residual: the block ends with a quantized residual add.
        in_shape: the block input's (N, C, H, W).
        out_rows: output rows of the depthwise (and of the block).
        pad_top: rows of padding above the depthwise's input.
        expand_groups: groups of the expand conv (1 without one).
    """

    bindings: tuple[relax.Var, ...]
    block_input: relax.Var
    output: relax.Var
    kernel: int
    stride: int
    dilation: int
    expanded: int
    has_expand: bool
    residual: bool
    in_shape: tuple[int, ...]
    out_rows: int
    pad_top: int
    expand_groups: int

    @property
    def label(self) -> str:
        """Compact description, a C identifier, e.g. ``k3s1e96_res``: kernel, stride,
        dilation when not 1, depthwise channels, ``_noexp`` without expand conv, ``_res``
        with a residual add."""
        text = f"k{self.kernel}s{self.stride}"
        text += f"d{self.dilation}" if self.dilation != 1 else ""
        text += f"e{self.expanded}"
        return text + ("" if self.has_expand else "_noexp") + ("_res" if self.residual else "")


_VAR_TYPES = (relax.Var, relax.DataflowVar)


def _vars_in(expr: relax.Expr) -> list[relax.Var]:
    """The variables `expr` reads, in argument order (repeated when read twice)."""
    out: list[relax.Var] = []
    _collect_vars(expr, out)
    return out


def _collect_vars(expr: relax.Expr, out: list) -> None:
    # exact types: an isinstance check against TVM's classes costs an ABC lookup, and a
    # graph walk asks this for every argument of every binding
    kind = type(expr)
    if kind in _VAR_TYPES:
        out.append(expr)
    elif kind is relax.Call:
        for a in items(expr.args):
            _collect_vars(a, out)
    elif kind is relax.Tuple:
        for f in items(expr.fields):
            _collect_vars(f, out)
    elif kind is relax.TupleGetItem:
        _collect_vars(expr.tuple_value, out)
    elif isinstance(expr, relax.Var):  # a subclass this module does not know
        out.append(expr)


def _key(var: relax.Var) -> int:
    """A dict key for a Relax variable: TVM objects hash by identity, but ``==`` on a
    variable builds an expression, so variables themselves make unreliable set members."""
    return hash(var)


def _read_once(cache: dict, expr: relax.Expr, read):
    """``read(expr)``, remembered in `cache` by `_key`."""
    k = _key(expr)
    value = cache.get(k)
    if value is None:
        value = cache[k] = read(expr)
    return value


class _Graph:
    """The bindings of a dataflow function: producers, consumers, program order.

    Every map is keyed by `_key` (an int); `var` maps a key back to its variable.
    """

    def __init__(self, func: relax.Function, mod: tvm.IRModule | None = None):
        self.mod = mod
        self.var: dict[int, relax.Var] = {}
        self.binds: dict[int, relax.Expr] = {}
        self.order: dict[int, int] = {}
        self.users: dict[int, set[int | None]] = {}
        self.reads: dict[int, tuple[relax.Var, ...]] = {}
        self._units: dict[int, tuple | None] = {}
        self._shapes: dict[int, tuple[int, ...]] = {}
        self._dtypes: dict[int, str] = {}
        self._convs: dict[int, bool] = {}
        for block in items(func.body.blocks):
            for b in items(block.bindings):
                if not isinstance(b, relax.VarBinding):
                    continue
                k = _key(b.var)
                self.var[k], self.order[k], self.binds[k] = b.var, len(self.order), b.value
                self.reads[k] = reads = tuple(_vars_in(b.value))
                for v in reads:
                    self.users.setdefault(_key(v), set()).add(k)
        for v in _vars_in(func.body.body):
            self.users.setdefault(_key(v), set()).add(None)  # None: the function's result

    def value(self, var: relax.Var) -> relax.Expr | None:
        """The value bound to `var`, None for a parameter."""
        return self.binds.get(_key(var))

    def shape(self, expr: relax.Expr) -> tuple[int, ...]:
        """`shape_of(expr)`, read from TVM once per expression."""
        return _read_once(self._shapes, expr, shape_of)

    def dtype(self, expr: relax.Expr) -> str:
        """`dtype_of(expr)`, read from TVM once per expression."""
        return _read_once(self._dtypes, expr, dtype_of)

    def is_conv(self, var: relax.Var) -> bool:
        """`var` is bound to a conv (`_is_conv`)."""
        k = _key(var)
        conv = self._convs.get(k)
        if conv is None:
            conv = self._convs[k] = k in self.binds and _is_conv(self.binds[k], self.mod)
        return conv

    def unit(self, final: relax.Var):
        """The int8 unit ending at `final`: (member keys, int8 leaves, its conv2d or None).

        Members are the bindings reachable backwards from `final` through non-int8
        tensors; leaves are the int8 variables where that walk stops. None when the walk
        meets anything but integer arithmetic and at most one conv2d. Computed once per
        variable (the matchers ask again for the same units); callers must not modify it.
        """
        k = _key(final)
        if k not in self._units:
            self._units[k] = self._unit(final)
        return self._units[k]

    def _unit(self, final: relax.Var):
        if (_key(final) not in self.binds or not isinstance(final.ty, relax.TensorType)
                or self.dtype(final) != "int8"):
            return None
        members: set[int] = set()
        leaves: list[relax.Var] = []
        convs: list[relax.Var] = []
        stack = [final]
        while stack:
            var = stack.pop()
            if _key(var) in members:
                continue
            value = self.binds.get(_key(var))
            if not isinstance(value, relax.Call) or not isinstance(value.op, tvm.ir.Op):
                return None
            is_conv = self.is_conv(var)
            if is_conv:
                convs.append(var)
            elif value.op.name not in _ARITH:
                return None
            members.add(_key(var))
            for arg in self.reads[_key(var)]:
                if is_conv or self.dtype(arg) == "int8":
                    if all(_key(arg) != _key(leaf) for leaf in leaves):
                        leaves.append(arg)
                else:
                    stack.append(arg)
        if len(convs) > 1:
            return None
        for k in members - {_key(final)}:
            if not self.users.get(k, set()) <= members:
                return None  # an intermediate of the unit is read elsewhere
        return members, leaves, (convs[0] if convs else None)

    def single_use(self, var: relax.Var, members: set[int]) -> bool:
        """`var` is read only by `members` (and is not a function result)."""
        users = self.users.get(_key(var), set())
        return bool(users) and users <= members


@dataclass(frozen=True)
class _Conv:
    """What the matcher needs of one int8 conv: kernel, stride, dilation, grouping."""

    kernel: int
    stride: int
    dilation: int
    pointwise: bool
    depthwise: bool
    pad_top: int = 0
    groups: int = 1


def _conv_tag(value: relax.Expr, mod: tvm.IRModule | None) -> dict | None:
    """The attributes of a zero-point-padded conv ``call_tir`` (`_common.padded_conv2d`)."""
    if mod is None or not is_op(value, "relax.call_tir"):
        return None
    from compiler.passes.resize_kernels import kernel_tag

    tag = kernel_tag(mod, value)
    return tag if tag is not None and tag.get("op") == "conv2d" else None


def _is_conv(value: relax.Expr, mod: tvm.IRModule | None) -> bool:
    """A ``relax.nn.conv2d``, or the tagged ``call_tir`` of a zero-point-padded conv."""
    return is_op(value, "relax.nn.conv2d") or _conv_tag(value, mod) is not None


def _conv_args(value: relax.Expr) -> list[relax.Expr]:
    return list(value.args[1].fields) if is_op(value, "relax.call_tir") else list(value.args[:2])


def _conv(graph: _Graph, conv: relax.Var) -> _Conv:
    value = graph.value(conv)
    x, w = _conv_args(value)
    c_in, (c_out, c_per_group, kh, kw) = graph.shape(x)[1], graph.shape(w)
    tag = _conv_tag(value, graph.mod)
    if tag is None:
        attrs = value.attrs
        if str(attrs.data_layout) != "NCHW" or str(attrs.kernel_layout) != "OIHW":
            return _Conv(kh, 1, 1, False, False)
        tag = {"strides": [int(v) for v in attrs.strides],
               "dilation": [int(v) for v in attrs.dilation],
               "padding": [int(v) for v in attrs.padding], "groups": int(attrs.groups)}
    square = len(set(tag["strides"])) == 1 and len(set(tag["dilation"])) == 1 and kh == kw
    stride, dilation = int(tag["strides"][0]), int(tag["dilation"][0])
    pointwise = square and (kh, kw) == (1, 1) and stride == 1 and not any(tag["padding"])
    depthwise = (square and c_per_group == 1 and c_out == c_in == int(tag["groups"]))
    return _Conv(kh, stride, dilation, pointwise, depthwise, int(tag["padding"][0]),
                 int(tag["groups"]))


def match_inverted_residual(graph: _Graph, end: relax.Var) -> InvertedResidual | None:
    """The inverted residual whose output is `end`, or None when `end` does not end one."""
    unit = graph.unit(end)
    if unit is None:
        return None
    members, leaves, conv = unit
    chain = set(members)
    residual_input = None
    if conv is None:  # a residual add: one leaf is the project's output
        if len(leaves) != 2:
            return None
        for p, x in (leaves, leaves[::-1]):
            sub = graph.unit(p) if graph.single_use(p, members) else None
            if sub is not None and sub[2] is not None and _conv(graph, sub[2]).pointwise:
                project, residual_input = sub, x
                break
        else:
            return None
        chain |= project[0]
    else:
        project = unit
    p_members, p_leaves, p_conv = project
    if not _conv(graph, p_conv).pointwise or len(p_leaves) != 1:
        return None
    d = p_leaves[0]
    dw = graph.unit(d) if graph.single_use(d, p_members) else None
    if dw is None or dw[2] is None or not _conv(graph, dw[2]).depthwise or len(dw[1]) != 1:
        return None
    chain |= dw[0]
    e = dw[1][0]
    if is_op(graph.value(e), "relax.nn.pad") and graph.single_use(e, dw[0]):
        chain.add(_key(e))
        e = graph.value(e).args[0]
        if not isinstance(e, relax.Var) or not graph.single_use(e, chain):
            return None
    expand = graph.unit(e) if graph.single_use(e, chain) else None
    has_expand = (expand is not None and expand[2] is not None and len(expand[1]) == 1
                  and _conv(graph, expand[2]).pointwise)
    if has_expand:
        chain |= expand[0]
        block_input = expand[1][0]
    else:
        block_input = e
    if residual_input is not None and _key(residual_input) != _key(block_input):
        # The residual may read the block input rescaled to the add's scale (a shared
        # quantizer on both operands): a conv-less unit of the block input, read only here.
        rescale = graph.unit(residual_input) if graph.single_use(residual_input, members) else None
        if (rescale is None or rescale[2] is not None or len(rescale[1]) != 1
                or _key(rescale[1][0]) != _key(block_input)):
            return None
        chain |= rescale[0]
    dwc = _conv(graph, dw[2])
    ordered = sorted(chain, key=graph.order.__getitem__)
    return InvertedResidual(
        bindings=tuple(graph.var[k] for k in ordered), block_input=block_input,
        output=end, kernel=dwc.kernel, stride=dwc.stride, dilation=dwc.dilation,
        expanded=shape_of(dw[2])[1], has_expand=has_expand,
        residual=residual_input is not None, in_shape=shape_of(block_input),
        out_rows=shape_of(dw[2])[2], pad_top=dwc.pad_top,
        expand_groups=_conv(graph, expand[2]).groups if has_expand else 1)


def find_inverted_residuals(func: relax.Function, mod: tvm.IRModule | None = None,
                            graph: _Graph | None = None) -> list[InvertedResidual]:
    """Every non-overlapping inverted residual of `func`, in program order.

    `mod` (the module holding `func`) lets the zero-point-padded conv kernels of
    `compiler.passes.lower_conv` be recognised by their tag; `graph`: `func`'s `_Graph`
    when the caller has built it already.
    """
    graph = graph if graph is not None else _Graph(func, mod)
    found: list[InvertedResidual] = []
    taken: set[int] = set()
    for k in reversed(list(graph.order)):  # from the end: a block's longest match first
        if k in taken:
            continue
        block = match_inverted_residual(graph, graph.var[k])
        keys = {_key(v) for v in block.bindings} if block is not None else set()
        if block is not None and not taken & keys:
            found.append(block)
            taken |= keys
    return sorted(found, key=lambda b: graph.order[_key(b.output)])


def _grouped_function(block: InvertedResidual, graph: _Graph, name: str):
    """The block's bindings as a ``Primitive`` Relax function, and the arguments to call it.

    Its parameters are the block input, then every constant the bindings use (FuseTIR
    takes no constants inside a primitive function; they stay arguments of the call, as
    for the groups ``FuseOps`` makes).
    """
    params = [relax.Var("x", block.block_input.ty)]
    args: list[relax.Expr] = [block.block_input]
    remap: dict[int, relax.Expr] = {_key(block.block_input): params[0]}

    def lift_constants(expr):
        if isinstance(expr, tvm.ir.GenericConst) and _key(expr) not in remap:
            remap[_key(expr)] = relax.Var(f"c{len(params) - 1}", expr.ty)
            params.append(remap[_key(expr)])
            args.append(expr)
        for sub_expr in getattr(expr, "args", None) or getattr(expr, "fields", None) or ():
            lift_constants(sub_expr)

    def rebuild(expr):
        if isinstance(expr, (relax.Var, tvm.ir.GenericConst)):
            return remap.get(_key(expr), expr)
        if isinstance(expr, relax.Call):
            return relax.Call(expr.op, [rebuild(a) for a in expr.args], expr.attrs,
                              expr.ty_args)
        if isinstance(expr, relax.Tuple):
            return relax.Tuple([rebuild(f) for f in expr.fields])
        return expr

    for var in block.bindings:
        lift_constants(graph.value(var))
    sub = relax.BlockBuilder()
    with sub.function(name, params, attrs={"Primitive": True, FUSION_ATTR: name}):
        with sub.dataflow():
            for var in block.bindings:
                value = rebuild(graph.value(var))
                last = _key(var) == _key(block.output)
                remap[_key(var)] = known_types.emit(sub, value, output=last)
        sub.emit_func_output(remap[_key(block.output)])
    return sub.get()[name], args


class _Fuser(PyExprMutator):
    def __init__(self, mod=None):
        super().__init__(mod)
        self.skip: set[int] = set()
        self.calls: dict[int, tuple] = {}
        self._taken = {gv.name_hint for gv in mod.get_global_vars()} if mod is not None else set()
        self._added: list[tuple[relax.GlobalVar, relax.Function]] = []

    def add_function(self, func: relax.Function, name: str) -> relax.GlobalVar:
        """``builder_.add_func(func, name)`` for a grouped function, kept until `finalize`.

        The builder's first ``add_func`` hashes every function of the module (the whole
        ``main``, constants included) to deduplicate; a grouped function never equals
        another (its name is one of its attributes), so it gets the global variable
        ``add_func`` would give it, typed as ``add_func`` types it. A name the module
        holds already goes through ``add_func``, which makes it unique.
        """
        if name in self._taken:
            return self.builder_.add_func(func, name)
        self._taken.add(name)
        gv = relax.GlobalVar(name)
        _update_type(gv, func.ty)
        self._added.append((gv, func))
        return gv

    def finalize(self) -> tvm.IRModule:
        """A new module: the builder's, with the grouped functions added. (The builder
        copies the module it was made with on its first ``add_func`` only, so without
        one, its module is the caller's, which must stay as it is.)"""
        out = self.builder_.finalize().clone()
        for gv, func in self._added:
            out[gv] = func
        return out

    def fuse(self, func: relax.Function, names: list[str], graph: _Graph | None = None,
             blocks: list[InvertedResidual] | None = None) -> relax.Function:
        graph = graph if graph is not None else _Graph(func, self.builder_.get())
        if blocks is None:
            blocks = find_inverted_residuals(func, graph=graph)
        for block in blocks:
            name = f"{FUSED_PREFIX}{len(names)}_{block.label}"
            names.append(name)
            func_, args = _grouped_function(block, graph, name)
            gv = self.add_function(func_, name)
            self.skip |= {_key(v) for v in block.bindings} - {_key(block.output)}
            self.calls[_key(block.output)] = (gv, args)
        if not blocks:
            return func
        return self.visit_expr(func)

    def visit_var_binding_(self, binding: relax.VarBinding) -> None:  # noqa: D102
        k = _key(binding.var)
        if k in self.skip:
            return
        if k in self.calls:
            gv, args = self.calls[k]
            new = self.builder_.emit(relax.Call(gv, [self.visit_expr(a) for a in args]),
                                     binding.var.name)
            self.set_var_remap(binding.var, new)
            return
        super().visit_var_binding_(binding)


def FuseInvertedResiduals():  # noqa: N802 - TVM pass naming
    """The pass: every int8 inverted residual of ``main`` becomes one grouped function.

    Run it after the integer-lowering passes (`compiler.passes.integer_lowering` does
    with ``fuse_inverted_residuals=True``). The names of the fused functions are in
    ``main``'s ``qanas.fused_blocks`` attribute (see `fused_blocks`).
    """

    def transform(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        if "main" not in [gv.name_hint for gv in mod.get_global_vars()]:
            return mod
        return _fuse_main(mod)

    return tvm.transform.module_pass(transform, opt_level=0, name="FuseInvertedResiduals")


def _fuse_main(mod: tvm.IRModule, graph: _Graph | None = None,
               blocks: list[InvertedResidual] | None = None) -> tvm.IRModule:
    """`mod` with the inverted residuals of ``main`` fused (`blocks`, found in `graph`,
    when the caller has them already)."""
    names: list[str] = []
    fuser = mutator(_Fuser)(mod)
    new_main = fuser.fuse(mod["main"], names, graph, blocks)
    if not names:
        return mod
    out = fuser.finalize()
    out["main"] = new_main.with_attr("qanas.fused_blocks", names)
    return out


def fused_blocks(mod: tvm.IRModule) -> list[str]:
    """Names of the inverted residuals fused into one kernel each (empty when none)."""
    main = mod["main"]
    names = main.attrs.get("qanas.fused_blocks") if main.attrs is not None else None
    return [str(n) for n in names] if names is not None else []


def extra_macs(block: InvertedResidual, band_rows: int | None = None,
               rolled: bool = True) -> int:
    """Expand MACs the row-band schedule computes more than once for `block`.

    Each band needs the input rows its depthwise reads; rows two bands share are kept in
    a ring buffer (`compiler.codegen.row_bands.roll_expanded_rows`), so nothing is
    computed twice. With ``rolled=False`` (the schedule when the ring cannot be made)
    the shared rows are expanded again, and counted here. Blocks without an expand conv
    recompute nothing.
    """
    from compiler.codegen.row_bands import BAND_ROWS, _band_rows

    if not block.has_expand or rolled:
        return 0
    _, c_in, height, width = block.in_shape
    band = _band_rows(block.out_rows, BAND_ROWS if band_rows is None else band_rows)
    span = (band - 1) * block.stride + (block.kernel - 1) * block.dilation + 1
    computed = 0
    for b in range(block.out_rows // band):
        top = b * band * block.stride - block.pad_top
        computed += max(0, min(top + span, height) - max(top, 0))
    per_row = width * block.expanded * (c_in // block.expand_groups)
    return max(0, computed - height) * per_row


def fuse_inverted_residuals(model):
    """A memory technique (`compiler.techniques`): `FuseInvertedResiduals` on a lowered model.

    Args:
        model: an integer-lowered `ImportedModel`.

    Returns:
        ``(model with the blocks fused, names of the fused blocks, extra MACs)``.
    """
    graph = _Graph(model.mod["main"], model.mod)
    blocks = find_inverted_residuals(model.mod["main"], graph=graph)
    if not blocks:
        return model, (), 0
    fused = model.with_module(_fuse_main(model.mod, graph, blocks))
    return fused, tuple(fused_blocks(fused.mod)), sum(extra_macs(b) for b in blocks)
