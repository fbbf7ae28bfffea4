"""TE computes of the resize kernels: float, int8 (with requantize) and int8 resize + argmax.

Each is a single ``te.compute`` per output element, so ``bb.emit_te`` makes one PrimFunc
with no intermediate tensor: the bilinear value is the 2×2-tap sum

    acc[n, c, i, j] = Σ_{a,b ∈ {0,1}} x[n, c, r_a[i], c_b[j]] · W_a[i] · V_b[j]  −  zp · D

computed per element in int32 (``D = D_h · D_w``; ``|acc| ≤ 255 · D < 2^31``), then
requantized exactly as `compiler.int8.requantize`. Being exact integer arithmetic it
equals the separable form ``Σ_b (Σ_a x·W_a) · V_b`` of the NumPy reference bit for bit.
The per-axis tables (`ResizeSpec.linear_table`, `ResizeSpec.nearest_indices`) are
kernel arguments (constants in flash), ``(4, n_out)`` int32 ``[i0, i1, w0, w1]`` for
linear and ``(n_out,)`` int32 indices for nearest.

Every function here takes ``te.Tensor`` arguments, as ``BlockBuilder.emit_te`` passes them.
"""

from __future__ import annotations

import json

import numpy as np
from tvm import relax, te, tirx

from compiler import int8
from compiler.te_memo import emit_te

KERNEL_ATTR = "qanas.kernel"
"""PrimFunc attribute of the kernels emitted with `emit_kernel`: a JSON tag saying what
the kernel computes (``{"op": "resize", ...}``), read back by `kernel_tag`."""


def _requantize_expr(acc, real: float, zero_point: int, qmin: int, qmax: int, dtype: str):
    """``acc`` (int32 PrimExpr) → ``dtype`` by `compiler.int8.requantize`'s exact steps.

    ``acc`` and the int64 product are bound once (``Let``), so the C computes each one
    time instead of repeating the tap sum in every use.
    """
    mult, shift = int8.quantize_multiplier(np.asarray(real, dtype=np.float64))
    m = int(np.asarray(mult).reshape(-1)[0])
    n = int(31 - np.asarray(shift).reshape(-1)[0])
    a = tirx.Var("acc", "int32")
    p = tirx.Var("prod", "int64")
    half = tirx.const((1 << (n - 1)) - 1, "int64")
    odd = tirx.bitwise_and(tirx.shift_right(p, tirx.const(n, "int64")), tirx.const(1, "int64"))
    y = tirx.shift_right(p + half + odd, tirx.const(n, "int64")) + tirx.const(zero_point, "int64")
    y = tirx.max(tirx.min(y, tirx.const(qmax, "int64")), tirx.const(qmin, "int64"))
    body = tirx.Let(p, tirx.Cast("int64", a) * tirx.const(m, "int64"), y.astype(dtype))
    return tirx.Let(a, acc, body)


class Int8Resize:
    """The per-element int8 value of one resize, as a PrimExpr builder.

    Args:
        method: ``"nearest"`` or ``"linear"``.
        x_zp: input zero point.
        real: ``s_x / s_y`` for nearest, ``s_x / (s_y · D)`` for linear; None when
            nearest keeps the input's quantization (a pure gather).
        out_zp, qmin, qmax: output zero point and storage range.
        denom: ``D = D_h · D_w`` for linear.
    """

    def __init__(self, method: str, x_zp: int, real: float | None, out_zp: int,
                 qmin: int, qmax: int, denom: int = 1):
        self.method, self.x_zp, self.real = method, int(x_zp), real
        self.out_zp, self.qmin, self.qmax, self.denom = int(out_zp), qmin, qmax, int(denom)

    def value(self, x, rows, cols, n, c, i, j):
        """The int8 output at ``(n, c, i, j)`` read from ``x`` through the tables."""
        if self.method == "nearest":
            v = x[n, c, rows[i], cols[j]]
            if self.real is None:
                return v
            acc = v.astype("int32") - tirx.const(self.x_zp, "int32")
            return _requantize_expr(acc, self.real, self.out_zp, self.qmin, self.qmax, "int8")

        def tap(r, q):
            return x[n, c, r, q].astype("int32")

        r0, r1, w0, w1 = rows[0, i], rows[1, i], rows[2, i], rows[3, i]
        c0, c1, v0, v1 = cols[0, j], cols[1, j], cols[2, j], cols[3, j]
        acc = ((tap(r0, c0) * v0 + tap(r0, c1) * v1) * w0
               + (tap(r1, c0) * v0 + tap(r1, c1) * v1) * w1)
        if self.x_zp:
            acc = acc - tirx.const(self.x_zp * self.denom, "int32")
        return _requantize_expr(acc, self.real, self.out_zp, self.qmin, self.qmax, "int8")


def int8_resize(x: te.Tensor, rows: te.Tensor, cols: te.Tensor, kernel: Int8Resize,
                out_hw: tuple[int, int]) -> te.Tensor:
    """The int8 resize of ``x`` (NCHW) to ``out_hw``: one element per iteration."""
    n, c = (int(d) for d in x.shape[:2])
    return te.compute((n, c, *out_hw),
                      lambda b, ch, i, j: kernel.value(x, rows, cols, b, ch, i, j),
                      name="resize")


def float_resize_value(x, row_idx, row_w, col_idx, col_w, method: str):
    """The float resize's element function ``(n, c, i, j) → PrimExpr`` (see `float_resize`)."""

    def value(b, ch, i, j):
        if method == "nearest":
            return x[b, ch, row_idx[0, i], col_idx[0, j]]
        r0, r1, c0, c1 = row_idx[0, i], row_idx[1, i], col_idx[0, j], col_idx[1, j]
        top = x[b, ch, r0, c0] * col_w[0, j] + x[b, ch, r0, c1] * col_w[1, j]
        bottom = x[b, ch, r1, c0] * col_w[0, j] + x[b, ch, r1, c1] * col_w[1, j]
        return top * row_w[0, i] + bottom * row_w[1, i]

    return value


def float_resize(x: te.Tensor, row_idx: te.Tensor, row_w: te.Tensor, col_idx: te.Tensor,
                 col_w: te.Tensor, method: str, out_hw: tuple[int, int]) -> te.Tensor:
    """The float resize of ``x`` (NCHW): nearest gathers ``idx[0]``; linear weights 2×2 taps.

    ``*_idx`` are ``(2, n_out)`` int32 (``[i0, i1]``; nearest uses row 0), ``*_w``
    ``(2, n_out)`` float32; the width is interpolated first, as the ONNX reference does.
    """
    n, c = (int(d) for d in x.shape[:2])
    return te.compute((n, c, *out_hw),
                      float_resize_value(x, row_idx, row_w, col_idx, col_w, method),
                      name="resize")


def float_resize_argmax(x: te.Tensor, row_idx: te.Tensor, row_w: te.Tensor,
                        col_idx: te.Tensor, col_w: te.Tensor, method: str,
                        out_hw: tuple[int, int]) -> te.Tensor:
    """``argmax`` over channels of `float_resize`, without the resized tensor."""
    n, c = (int(d) for d in x.shape[:2])
    return argmax_channels(float_resize_value(x, row_idx, row_w, col_idx, col_w, method),
                           (n, c, *out_hw), str(x.dtype))


def _argmax_reducer(dtype: str):
    """``(index, value)`` pairs → the pair with the largest value, the first one on a tie."""

    def combine(lhs, rhs):
        take_rhs = rhs[1] > lhs[1]
        return (tirx.Select(take_rhs, rhs[0], lhs[0]), tirx.Select(take_rhs, rhs[1], lhs[1]))

    def identity(_t0, t1):
        return (tirx.const(-1, "int32"), tirx.min_value(t1))

    return te.comm_reducer(combine, identity, name=f"argmax_{dtype}")


def argmax_channels(value, shape: tuple[int, int, int, int], dtype: str,
                    out_dtype: str = "uint8") -> te.Tensor:
    """``argmax`` over axis 1 of the tensor whose element ``(n, c, i, j)`` is ``value(...)``.

    Returns ``(N, 1, H, W)`` ``out_dtype`` (ONNX ArgMax, axis 1, keepdims 1, ties → the
    first index). ``value`` is a function of four index PrimExprs (a tensor's ``__call__``
    or a fused per-element expression such as `Int8Resize.value`).

    For 8-bit values (at most 256 channels) the reduction is a plain ``max`` of the
    packed key ``(v − min) · 256 + (255 − c)``: the largest value wins and, among equal
    values, the smallest ``c``; ``value`` then appears once in the loop body, so its
    ``Let``-bound accumulator is computed once per channel. Other types use an
    ``(index, value)`` reducer.
    """
    n, c, h, w = shape
    k = te.reduce_axis((0, c), name="k")
    if dtype in ("int8", "uint8") and c <= 256:
        low = -128 if dtype == "int8" else 0

        def key(b, i, j):
            v = value(b, k, i, j).astype("int32") - tirx.const(low, "int32")
            return v * 256 + (tirx.const(255, "int32") - k.var.astype("int32"))

        best = te.compute((n, 1, h, w), lambda b, _o, i, j: te.max(key(b, i, j), axis=k),
                          name="argmax")
        return te.compute((n, 1, h, w), lambda b, o, i, j: (
            tirx.const(255, "int32") - tirx.bitwise_and(best[b, o, i, j],
                                                       tirx.const(255, "int32"))
        ).astype(out_dtype), name="argmax_index")
    reducer = _argmax_reducer(dtype)
    idx, _ = te.compute((n, 1, h, w),
                        lambda b, _o, i, j: reducer((k.var.astype("int32"), value(b, k, i, j)),
                                                    axis=k),
                        name="argmax")
    return te.compute((n, 1, h, w), lambda b, o, i, j: idx[b, o, i, j].astype(out_dtype),
                      name="argmax_cast")


def int8_resize_argmax(x: te.Tensor, rows: te.Tensor, cols: te.Tensor, kernel: Int8Resize,
                       out_hw: tuple[int, int]) -> te.Tensor:
    """``argmax`` over channels of `int8_resize`, without the resized tensor: uint8 (N,1,H,W)."""
    n, c = (int(d) for d in x.shape[:2])
    return argmax_channels(lambda b, ch, i, j: kernel.value(x, rows, cols, b, ch, i, j),
                           (n, c, *out_hw), "int8")


def tensor_argmax(x: te.Tensor) -> te.Tensor:
    """``argmax`` over axis 1 of a 4-D tensor: uint8 (N, 1, H, W)."""
    shape = tuple(int(d) for d in x.shape)
    return argmax_channels(lambda b, ch, i, j: x[b, ch, i, j], shape, str(x.dtype))


def emit_kernel(bb, te_func, *args, name: str, tag: dict, **kwargs):
    """``bb.emit_te(te_func, *args)`` as a PrimFunc named ``name`` carrying ``tag``.

    ``tag`` (JSON-serialisable) is stored as the PrimFunc attribute `KERNEL_ATTR`, so a
    later pass can recognise the kernel (`kernel_tag`) and rebuild or fuse it. The
    PrimFunc comes from the active `compiler.te_memo.TeMemo` when met before.
    """
    var = emit_te(bb, te_func, *args, primfunc_name_hint=name, **kwargs)
    call = bb.lookup_binding(var)
    gv = call.args[0]
    bb.update_func(gv, bb.get()[gv].with_attr(KERNEL_ATTR, json.dumps(tag, sort_keys=True)))
    return var


def kernel_tag(mod, call) -> dict | None:
    """The `emit_kernel` tag of the PrimFunc ``call`` (an ``R.call_tir``) runs, or None."""
    if not (isinstance(call, relax.Call) and getattr(call.op, "name", "") == "relax.call_tir"):
        return None
    gv = call.args[0]
    if gv not in mod.get_global_vars():
        return None
    attrs = mod[gv].attrs
    if attrs is None or KERNEL_ATTR not in attrs:
        return None
    return json.loads(str(attrs[KERNEL_ATTR]))
