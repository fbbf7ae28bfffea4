"""What every integer-lowering pass shares: pattern helpers, requantize emission, the pass shell.

Every lowering pass rewrites one family of ``R.quantize(f(R.dequantize(x_q), ...))``
patterns. The shell (`QuantRewriter` + `rewrite_pass`) visits each ``R.quantize``
call, hands it to the pass's ``rewrite`` method, and, when that returns an int8
expression, uses it in place of the quantize; the float ops it bypassed become
dead and are removed. A rewrite that does not match returns None and the float
code stays (the leftover-float checker in `compiler.passes` then names it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tvm
from tvm import relax
from tvm.relax.expr_functor import PyExprMutator, mutator

from compiler import int8, known_types
from compiler.passes.resize_kernels import emit_kernel


@dataclass(frozen=True)
class QParams:
    """Quantization parameters of one tensor: float32 scale(s), zero point(s), axis, dtype."""

    scale: np.ndarray
    zero_point: np.ndarray
    axis: int
    dtype: str

    @property
    def per_tensor(self) -> bool:
        """True when scale and zero point are single values."""
        return self.scale.size == 1 and self.zero_point.size == 1

    @property
    def s(self) -> float:
        """The per-tensor scale as a Python float."""
        return float(self.scale.reshape(-1)[0])

    @property
    def zp(self) -> int:
        """The per-tensor zero point as a Python int."""
        return int(self.zero_point.reshape(-1)[0])

    def qrange(self) -> tuple[int, int]:
        """The storage type's range, e.g. ``(-128, 127)`` for int8."""
        info = np.iinfo(self.dtype)
        return int(info.min), int(info.max)


def is_op(expr: relax.Expr | None, name: str) -> bool:
    """True when ``expr`` is a call of the Relax operator ``name`` (e.g. ``"relax.add"``)."""
    return (isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op)
            and expr.op.name == name)


def dtype_of(expr: relax.Expr) -> str:
    """The element dtype of a tensor-typed expression."""
    return str(expr.ty.dtype)


def items(array) -> list:
    """The elements of a TVM FFI ``Array`` (or any sequence) as a list.

    Iterating an ``Array`` checks the length and normalises the index in Python for every
    element; one slice reads them all at a third of the cost, which the passes' graph
    walks (every binding, every argument) feel.
    """
    return array[:]


def shape_of(expr: relax.Expr) -> tuple[int, ...]:
    """The static shape of a tensor-typed expression."""
    shape = expr.ty.shape
    # a ShapeExpr's own indexing is a Python wrapper per element; its values Array is not
    return tuple(int(d) for d in items(shape.values if isinstance(shape, relax.ShapeExpr)
                                       else shape))


def const_value(expr: relax.Expr) -> np.ndarray | None:
    """The numpy value of a ``tvm.ir.GenericConst``, else None."""
    return expr.value.numpy() if isinstance(expr, tvm.ir.GenericConst) else None


def prim_number(expr: relax.Expr) -> float:
    """The Python number held by a ``R.prim_value``."""
    return expr.value


def qparams_of(call: relax.Call, data_dtype: str) -> QParams | None:
    """The `QParams` of an ``R.quantize`` / ``R.dequantize`` call with constant parameters."""
    scale, zp = const_value(call.args[1]), const_value(call.args[2])
    if scale is None or zp is None:
        return None
    return QParams(scale.astype(np.float32), zp.astype(np.int64), int(call.attrs.axis), data_dtype)


def broadcast_shape(rank: int, axis: int, n: int) -> tuple[int, ...]:
    """Shape that makes an ``n``-vector broadcast along ``axis`` of a rank-``rank`` tensor."""
    return tuple(n if i == axis else 1 for i in range(rank))


def variable_bindings(func: relax.Function) -> dict[relax.Var, relax.Expr]:
    """Every ``var = value`` binding of ``func``'s body, so passes can look up producers."""
    binds: dict[relax.Var, relax.Expr] = {}
    if isinstance(func.body, relax.SeqExpr):
        for block in items(func.body.blocks):
            for b in items(block.bindings):
                if isinstance(b, relax.VarBinding):
                    binds[b.var] = b.value
    return binds


class QuantRewriter(PyExprMutator):
    """Base mutator: calls ``self.rewrite(quantize_call, out_qparams)`` on each R.quantize.

    Subclasses implement ``rewrite``; helpers here resolve variables to the calls that
    bind them (in the function as it was before this pass) and emit integer ops.
    """

    PRODUCERS: frozenset[str] | None = None
    """Operators whose result ``rewrite`` may replace as the value an R.quantize reads
    (its producer); None: any. A function with no such R.quantize is returned as it is,
    without visiting it or sweeping its dead code (the passes before it end with the
    sweep)."""

    def __init__(self, mod: tvm.IRModule | None = None):
        super().__init__(mod)
        self.binds: dict[relax.Var, relax.Expr] = {}

    def lower_function(self, func: relax.Function) -> relax.Function:
        """Rewrites ``func`` and removes the float ops left dead."""
        self.binds = variable_bindings(func)
        if self.PRODUCERS is not None and not self._quantizes_of(self.PRODUCERS):
            return func
        new = self.visit_expr(func)
        return relax.analysis.remove_all_unused(new)

    def _quantizes_of(self, ops: frozenset[str]) -> bool:
        """Some R.quantize of the function reads the result of one of `ops`."""
        for value in self.binds.values():
            if is_op(value, "relax.quantize"):
                node = self.producer(value.args[0])
                if isinstance(node, relax.Call) and getattr(node.op, "name", None) in ops:
                    return True
        return False

    def producer(self, expr: relax.Expr) -> relax.Expr:
        """The value bound to ``expr`` when it is a variable, else ``expr`` itself."""
        seen = 0
        while isinstance(expr, relax.Var) and expr in self.binds and seen < 64:
            expr, seen = self.binds[expr], seen + 1
        return expr

    def dequantized(self, expr: relax.Expr) -> tuple[relax.Expr, QParams] | None:
        """If ``expr`` is ``R.dequantize(q, ...)``: the *new* integer ``q`` and its params."""
        call = self.producer(expr)
        if not is_op(call, "relax.dequantize"):
            return None
        q = call.args[0]
        qp = qparams_of(call, dtype_of(q))
        if qp is None:
            return None
        return (q if isinstance(q, tvm.ir.GenericConst) else self.visit_expr(q)), qp

    def visit_call_(self, call: relax.Call) -> relax.Expr:  # noqa: D102 - visitor hook
        new = super().visit_call_(call)
        if is_op(call, "relax.quantize") and dtype_of(call.args[0]).startswith("float"):
            qp = qparams_of(call, str(call.attrs.out_dtype))
            if qp is not None and qp.per_tensor:
                out = self.rewrite(call, qp)
                if out is not None:
                    return out
        return new

    def rewrite(self, call: relax.Call, out: QParams) -> relax.Expr | None:
        """Returns an integer expression replacing ``call`` (an R.quantize), or None."""
        raise NotImplementedError

    # ---- emission helpers -------------------------------------------------------------
    def emit(self, expr: relax.Expr) -> relax.Var:
        """Emits ``expr`` as a new binding of the block being built."""
        return known_types.emit(self.builder_, expr)

    def to_int(self, x: relax.Expr, dtype: str, minus: int | np.ndarray = 0) -> relax.Expr:
        """``astype(x, dtype) - minus`` (the subtraction is skipped when ``minus`` is 0)."""
        y = self.emit(relax.op.astype(x, dtype))
        if np.any(np.asarray(minus) != 0):
            y = self.emit(relax.op.subtract(y, relax.const(np.asarray(minus, dtype), dtype)))
        return y

    def round_shift_clamp(self, prod: relax.Expr, right_shift: np.ndarray, zero_point: int,
                          qmin: int, qmax: int, bshape: tuple[int, ...] | None = None,
                          out_dtype: str = "int8") -> relax.Expr:
        """int64 ``prod / 2^right_shift`` rounded half to even, ``+ zp``, clamped, cast.

        Emits exactly `compiler.int8.rounding_right_shift`:
        ``(p + 2^(n-1) - 1 + ((p >> n) & 1)) >> n``.
        """
        n = np.asarray(right_shift, dtype=np.int64)
        if bshape is not None and n.size > 1:
            n = n.reshape(bshape)
        n_c = relax.const(n, "int64")
        half = relax.const((np.left_shift(np.int64(1), n - 1) - 1).astype(np.int64), "int64")
        odd = self.emit(relax.op.bitwise_and(self.emit(relax.op.right_shift(prod, n_c)),
                                             relax.const(np.int64(1), "int64")))
        y = self.emit(relax.op.add(self.emit(relax.op.add(prod, half)), odd))
        y = self.emit(relax.op.right_shift(y, n_c))
        if zero_point:
            y = self.emit(relax.op.add(y, relax.const(np.int64(zero_point), "int64")))
        y = self.emit(relax.op.clip(y, relax.prim_value(int(qmin)), relax.prim_value(int(qmax))))
        return self.emit(relax.op.astype(y, out_dtype))

    def requantize(self, acc: relax.Expr, real: np.ndarray | float, zero_point: int,
                   qmin: int, qmax: int, bshape: tuple[int, ...] | None = None) -> relax.Expr:
        """int32 accumulator → int8 with multiplier/shift from `int8.quantize_multiplier`."""
        mult, shift = int8.quantize_multiplier(np.asarray(real, dtype=np.float64))
        m = mult.astype(np.int64)
        if bshape is not None and m.size > 1:
            m = m.reshape(bshape)
        prod = self.emit(relax.op.multiply(self.to_int(acc, "int64"), relax.const(m, "int64")))
        return self.round_shift_clamp(prod, 31 - shift.astype(np.int64), zero_point, qmin, qmax,
                                      bshape)

    def rescale(self, x: relax.Expr, src: QParams, dst: QParams) -> relax.Expr:
        """An int8 tensor re-expressed in ``dst``'s scale and zero point (identity if equal)."""
        if src.s == dst.s and src.zp == dst.zp:
            return x
        acc = self.to_int(x, "int32", src.zp)
        lo, hi = dst.qrange()
        return self.requantize(acc, src.s / dst.s, dst.zp, lo, hi)

    def conv2d_int32(self, x_q: relax.Expr, w: relax.Expr, strides, padding, dilation,
                      groups: int, pad_value: int) -> relax.Var:
        """Emits an int8 NCHW/OIHW conv2d with an int32 accumulator reading ``pad_value`` outside.

        With zero padding (none, or a zero ``pad_value``) this is ``relax.op.nn.conv2d``.
        Otherwise it is one ``call_tir`` of `padded_conv2d`, a PrimFunc named ``conv2d``
        tagged (`resize_kernels.kernel_tag`) ``{"op": "conv2d", "strides", "padding",
        "dilation", "groups", "pad_value"}``, so the padding is read at the borders by the
        fused kernel instead of being a ``pad`` kernel writing a padded copy. A pass that
        uses it must be built with `kernel_rewrite_pass`, which keeps the PrimFunc.
        """
        attrs = {"strides": [int(s) for s in strides], "padding": [int(p) for p in padding],
                 "dilation": [int(d) for d in dilation], "groups": int(groups)}
        if not any(attrs["padding"]) or pad_value == 0:
            return self.emit(relax.op.nn.conv2d(x_q, w, **attrs, out_dtype="int32"))
        tag = {"op": "conv2d", **attrs, "pad_value": int(pad_value)}
        return emit_kernel(self.builder_, padded_conv2d, x_q, w, attrs["strides"],
                           attrs["padding"], attrs["dilation"], attrs["groups"],
                           tag["pad_value"], name="conv2d", tag=tag)

    def activation_bounds(self, expr: relax.Expr, out: QParams):
        """Peels a float ReLU / clip off ``expr``; returns ``(inner, qmin, qmax)``.

        The clamp is folded into the requantize bounds: quantization is monotonic, so
        ``quantize(clip(y, a, b)) = clip(quantize(y), quantize(a), quantize(b))``.
        """
        lo, hi = out.qrange()
        node = self.producer(expr)
        if is_op(node, "relax.nn.relu"):
            return node.args[0], max(lo, out.zp), hi
        if is_op(node, "relax.clip") and dtype_of(node).startswith("float"):
            a = int(int8.quantize(prim_number(node.args[1]), out.s, out.zp, lo, hi))
            b = int(int8.quantize(prim_number(node.args[2]), out.s, out.zp, lo, hi))
            return node.args[0], max(lo, a), min(hi, b)
        return expr, lo, hi


def function_pass(name: str, rewrite) -> tvm.transform.Pass:
    """A module pass applying ``rewrite(mod, func) -> func`` to every Relax function.

    The input module is left untouched: the rewritten functions go into a clone, so a
    caller that keeps the module it passed in (a Before/Expected test, a fallback path)
    still sees the original.
    """

    def transform(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        updates = {gv: rewrite(mod, func) for gv, func in mod.functions.items()
                   if isinstance(func, relax.Function)}
        out = mod.clone()
        for gv, func in updates.items():
            out[gv] = func
        return out

    return tvm.transform.module_pass(transform, opt_level=0, name=name)


def rewrite_pass(name: str, rewriter_cls: type[QuantRewriter]) -> tvm.transform.Pass:
    """Wraps a `QuantRewriter` subclass into a module pass over every Relax function."""
    return function_pass(name, lambda mod, func: mutator(rewriter_cls)(mod).lower_function(func))


def padded_conv2d(x, w, strides, padding, dilation, groups: int, pad_value: int):
    """TE compute of an int8 NCHW/OIHW conv2d (int32 accumulator) reading ``pad_value`` outside.

    The border is a ``topi.nn.pad`` stage of the same compute, not a tensor of its own: the
    PrimFunc ``bb.emit_te`` makes of it holds the pad and the convolution together, so
    fusion adds the epilogue to it and the kernel schedule (`compiler.codegen.schedule`)
    inlines the pad into the convolution's read (a bounds check per read), leaving no
    padded copy of the input anywhere.

    Args:
        x, w: ``te.Tensor`` input (N, C, H, W) and weight (O, C / groups, KH, KW).
        strides, dilation: (h, w) pairs.
        padding: (top, left, bottom, right), as ``relax.op.nn.conv2d`` takes it.
        groups: group count (C for depthwise).
        pad_value: the value read outside the input, e.g. its zero point.
    """
    from tvm import topi

    top, left, bottom, right = (int(p) for p in padding)
    padded = topi.nn.pad(x, [0, 0, top, left], [0, 0, bottom, right], pad_value=pad_value,
                         name="pad_value_temp")
    return topi.nn.conv(padded, w, [int(s) for s in strides], 0, [int(d) for d in dilation],
                        int(groups), "NCHW", "OIHW", "int32")


def kernel_rewrite_pass(name: str, rewriter_cls: type[QuantRewriter]) -> tvm.transform.Pass:
    """As `rewrite_pass`, for a rewriter that also emits TIR kernels (``emit_te``).

    One rewriter visits every Relax function; the PrimFuncs its builder gained go into the
    output module beside the rewritten functions (the input module stays untouched).
    """

    def transform(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        rewriter = mutator(rewriter_cls)(mod)
        updates = {gv: rewriter.lower_function(func) for gv, func in mod.functions.items()
                   if isinstance(func, relax.Function)}
        known = {gv.name_hint for gv in mod.get_global_vars()}
        out = mod.clone()
        for gv, func in rewriter.builder_.get().functions.items():
            if gv.name_hint not in known:
                out[gv] = func
        for gv, func in updates.items():
            out[gv] = func
        return out

    return tvm.transform.module_pass(transform, opt_level=0, name=name)
