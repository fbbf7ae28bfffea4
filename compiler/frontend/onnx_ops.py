"""One converter per supported ONNX op: an ONNX node → high-level Relax ops.

The table at the bottom (`CONVERTERS`) must cover every row of
`compiler.frontend.support.SUPPORTED_OPS`; a test checks that.
"""

from __future__ import annotations

from functools import partial

import numpy as np
import onnx
from onnx import helper
from tvm import relax

from compiler.errors import UnsupportedOpError
from compiler.frontend.dq_const import DQConst
from compiler.padding import explicit_pads
from compiler.passes.resize_kernels import emit_kernel, float_resize
from compiler.passes.resize_spec import ResizeSpec, exact_scale


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _prim(value: float, dtype: str) -> relax.Expr:
    if dtype.startswith("float"):
        return relax.prim_value(tvm_float(value))
    return relax.prim_value(int(value))


def tvm_float(value: float) -> float:
    """Python float of ``value`` with infinities clamped to float32's range."""
    return float(np.clip(value, np.finfo(np.float32).min, np.finfo(np.float32).max))


def _dtype(expr: relax.Expr) -> str:
    return str(expr.ty.dtype)


def _fconst(value) -> relax.Expr:
    return relax.const(np.asarray(value, dtype=np.float32), "float32")


def _pads(node, attrs: dict, x: relax.Expr, kernel_hw) -> tuple[int, int, int, int]:
    """Explicit (top, left, bottom, right) padding, ``auto_pad`` resolved on x's shape."""
    in_hw = [int(d) for d in list(x.ty.shape)[2:]]
    return explicit_pads(attrs, in_hw, [int(k) for k in kernel_hw],
                         f"operator {node.op_type} (node {node.name!r})")


def _axis(axis: int, rank: int) -> int:
    return axis + rank if axis < 0 else axis


def _quant_params(ctx, node, zp_dtype_default: str):
    scale = ctx.value(node.input[1]).astype(np.float32)
    if len(node.input) > 2 and node.input[2]:
        zp = ctx.value(node.input[2])
    else:
        zp = np.zeros(scale.shape, dtype=zp_dtype_default)
    return scale, zp


def _convert_quantize(node, ctx, attrs):
    x = ctx.expr(node.input[0])
    scale, zp = _quant_params(ctx, node, "uint8")
    axis = _axis(attrs.get("axis", 1), len(x.ty.shape)) if scale.ndim else 0
    return [relax.op.quantize(x, _fconst(scale), relax.const(zp, str(zp.dtype)), axis=axis,
                              out_dtype=str(zp.dtype))]


def _convert_dequantize(node, ctx, attrs):
    raw = ctx.raw(node.input[0])
    q_dtype = str(raw.dtype) if isinstance(raw, np.ndarray) else _dtype(raw)
    scale, zp = _quant_params(ctx, node, q_dtype)
    rank = raw.ndim if isinstance(raw, np.ndarray) else len(raw.ty.shape)
    axis = _axis(attrs.get("axis", 1), rank) if scale.ndim else 0
    if isinstance(raw, np.ndarray):
        return [DQConst(raw, scale, zp.astype(raw.dtype), axis)]
    return [relax.op.dequantize(raw, _fconst(scale), relax.const(zp, str(zp.dtype)), axis=axis,
                                out_dtype="float32")]


def _weight(ctx, name: str, transpose: bool = False) -> relax.Expr:
    raw = ctx.raw(name)
    if isinstance(raw, DQConst):
        if transpose:
            axis = raw.axis if raw.scale.ndim == 0 else 1 - raw.axis
            raw = DQConst(raw.q.T.copy(), raw.scale, raw.zero_point, axis)
        return ctx.emit(raw.expr())
    if isinstance(raw, np.ndarray):
        return _fconst(raw.T if transpose else raw)
    return ctx.emit(relax.op.permute_dims(raw, [1, 0])) if transpose else raw


def _bias(ctx, name: str, rank: int) -> relax.Expr:
    """A 1-D bias shaped to broadcast over channel axis 1 of a rank-``rank`` result."""
    raw = ctx.raw(name)
    shape = (1, -1) + (1,) * (rank - 2)
    if isinstance(raw, DQConst):
        q = raw.q.reshape(shape) if rank > 2 else raw.q
        axis = 1 if (raw.scale.ndim and rank > 2) else 0
        return ctx.emit(DQConst(q, raw.scale, raw.zero_point, axis).expr())
    if isinstance(raw, np.ndarray):
        return _fconst(raw.reshape(shape) if rank > 2 else raw)
    return ctx.emit(relax.op.reshape(raw, [1, int(raw.ty.shape[0])] + [1] * (rank - 2)))


def _conv(ctx, x, node, attrs, weight_name, bias_name):
    w = _weight(ctx, weight_name)
    y = relax.op.nn.conv2d(
        x, w, strides=attrs.get("strides", [1, 1]),
        padding=_pads(node, attrs, x, list(w.ty.shape)[2:]),
        dilation=attrs.get("dilations", [1, 1]), groups=attrs.get("group", 1))
    if bias_name:
        y = relax.op.add(ctx.emit(y), _bias(ctx, bias_name, 4))
    return y


def _convert_conv(node, ctx, attrs):
    bias = node.input[2] if len(node.input) > 2 else ""
    return [_conv(ctx, ctx.expr(node.input[0]), node, attrs, node.input[1], bias)]


def _convert_qlinear_conv(node, ctx, attrs):
    x, xs, xz, w, ws, wz, ys, yz = (node.input[i] for i in range(8))
    x_scale, w_scale = ctx.value(xs).astype(np.float32), ctx.value(ws).astype(np.float32)
    x_zp = ctx.value(xz)
    dq_x = ctx.emit(relax.op.dequantize(ctx.expr(x), _fconst(x_scale), relax.const(
        x_zp, str(x_zp.dtype)), axis=1, out_dtype="float32"))
    ctx.env[w + "#dq"] = DQConst(ctx.value(w), w_scale, ctx.value(wz), 0)
    bias = ""
    if len(node.input) > 8 and node.input[8]:
        b = ctx.value(node.input[8])
        bias = node.input[8] + "#dq"
        bscale = (x_scale * w_scale).astype(np.float32)
        ctx.env[bias] = DQConst(b, bscale, np.zeros(bscale.shape, np.int32), 0)
    y = ctx.emit(_conv(ctx, dq_x, node, attrs, w + "#dq", bias))
    y_zp = ctx.value(yz)
    return [relax.op.quantize(y, _fconst(ctx.value(ys)), relax.const(y_zp, str(y_zp.dtype)),
                              axis=1, out_dtype=str(y_zp.dtype))]


def _convert_conv_integer(node, ctx, attrs):
    def shifted(idx: int, zp_idx: int) -> relax.Expr:
        v = ctx.expr(node.input[idx])
        v = ctx.emit(relax.op.astype(v, "int32"))
        if len(node.input) > zp_idx and node.input[zp_idx]:
            zp = ctx.value(node.input[zp_idx]).astype(np.int32)
            if zp.ndim == 1 and idx == 1:
                zp = zp.reshape(-1, 1, 1, 1)
            v = ctx.emit(relax.op.subtract(v, relax.const(zp, "int32")))
        return v

    x, w = shifted(0, 2), shifted(1, 3)
    return [relax.op.nn.conv2d(
        x, w, strides=attrs.get("strides", [1, 1]),
        padding=_pads(node, attrs, x, list(w.ty.shape)[2:]),
        dilation=attrs.get("dilations", [1, 1]),
        groups=attrs.get("group", 1), out_dtype="int32")]


def _convert_gemm(node, ctx, attrs):
    y = relax.op.matmul(ctx.expr(node.input[0]),
                        _weight(ctx, node.input[1], transpose=bool(attrs.get("transB", 0))))
    if len(node.input) > 2 and node.input[2]:
        y = relax.op.add(ctx.emit(y), _bias(ctx, node.input[2], 2))
    return [y]


def _convert_matmul(node, ctx, attrs):
    return [relax.op.matmul(ctx.expr(node.input[0]), _weight(ctx, node.input[1]))]


def _binary(op):
    return lambda node, ctx, attrs: [op(ctx.expr(node.input[0]), ctx.expr(node.input[1]))]


def _convert_concat(node, ctx, attrs):
    xs = [ctx.expr(n) for n in node.input]
    return [relax.op.concat(xs, axis=_axis(attrs["axis"], len(ctx.shapes[node.output[0]])))]


def _convert_clip(node, ctx, attrs):
    x = ctx.expr(node.input[0])
    dtype = _dtype(x)
    if ctx.opset < 11:
        lo, hi = attrs.get("min", -np.inf), attrs.get("max", np.inf)
    else:
        lo = ctx.value(node.input[1]).item() if len(node.input) > 1 and node.input[1] else None
        hi = ctx.value(node.input[2]).item() if len(node.input) > 2 and node.input[2] else None
        info = np.iinfo(dtype) if not dtype.startswith("float") else None
        lo = lo if lo is not None else (info.min if info else -np.inf)
        hi = hi if hi is not None else (info.max if info else np.inf)
    lo = min(lo, hi)  # ONNX: min > max gives max everywhere
    return [relax.op.clip(x, _prim(lo, dtype), _prim(hi, dtype))]


def _hard_sigmoid(ctx, x, alpha: float, beta: float) -> relax.Expr:
    y = ctx.emit(relax.op.multiply(x, _fconst(alpha)))
    y = ctx.emit(relax.op.add(y, _fconst(beta)))
    return relax.op.clip(y, relax.prim_value(0.0), relax.prim_value(1.0))


def _convert_hard_sigmoid(node, ctx, attrs):
    return [_hard_sigmoid(ctx, ctx.expr(node.input[0]), attrs.get("alpha", 0.2),
                          attrs.get("beta", 0.5))]


def _convert_hard_swish(node, ctx, attrs):
    x = ctx.expr(node.input[0])
    return [relax.op.multiply(x, ctx.emit(_hard_sigmoid(ctx, x, 1.0 / 6.0, 0.5)))]


def _convert_softmax(node, ctx, attrs):
    x = ctx.expr(node.input[0])
    rank = len(x.ty.shape)
    axis = _axis(attrs.get("axis", -1 if ctx.opset >= 13 else 1), rank)
    if ctx.opset < 13 and axis != rank - 1:
        raise UnsupportedOpError(
            f"operator Softmax (node {node.name!r}) before opset 13 is supported only over the "
            "last axis; re-export with opset >= 13")
    return [relax.op.nn.softmax(x, axis=axis)]


def _resize_spec(node, ctx, attrs, in_shape, out_shape) -> ResizeSpec:
    """The exact `ResizeSpec` of an ONNX Resize (opset >= 11) with constant scales/sizes."""
    name = node.name or "<unnamed>"
    if ctx.opset < 11:
        raise UnsupportedOpError(
            f"operator Resize (node {name!r}) before opset 11 (asymmetric coordinates from "
            "scales only) is not supported; re-export the model with opset >= 11")
    if tuple(out_shape[:2]) != tuple(in_shape[:2]):
        raise UnsupportedOpError(
            f"operator Resize (node {name!r}) may resize only the spatial axes")
    mode = attrs.get("mode", b"nearest").decode()
    coord = attrs.get("coordinate_transformation_mode", b"half_pixel").decode()
    nearest = attrs.get("nearest_mode", b"round_prefer_floor").decode()
    sizes = ctx.value(node.input[3]) if len(node.input) > 3 and node.input[3] else None
    if sizes is not None and sizes.size:
        return ResizeSpec.from_sizes(mode, coord, nearest, in_shape[2:], out_shape[2:])
    scales = ctx.value(node.input[2]).astype(np.float32)
    if "axes" in attrs:  # scales of the listed axes only (opset 18): H and W, any order
        by_axis = dict(zip((a % 4 for a in attrs["axes"]), scales, strict=True))
        scales = np.array([1, 1, by_axis[2], by_axis[3]], np.float32)
    return ResizeSpec(mode, coord, nearest, tuple(int(d) for d in in_shape[2:]),
                      tuple(int(d) for d in out_shape[2:]),
                      tuple(exact_scale(s) for s in scales[2:]))


def _convert_resize(node, ctx, attrs):
    """Resize as one exact float kernel (`float_resize`), tagged for the int8 lowering."""
    x = ctx.expr(node.input[0])
    in_shape = tuple(int(d) for d in x.ty.shape)
    spec = _resize_spec(node, ctx, attrs, in_shape, tuple(ctx.shapes[node.output[0]]))
    if _dtype(x) != "float32":
        raise UnsupportedOpError(
            f"operator Resize (node {node.name!r}) on {_dtype(x)} data: resize float32 "
            "tensors (DequantizeLinear -> Resize -> QuantizeLinear for int8)")
    (ri, rw), (ci, cw) = spec.float_table(0), spec.float_table(1)
    if spec.method == "nearest":
        ri = np.stack([spec.nearest_indices(0)] * 2)
        ci = np.stack([spec.nearest_indices(1)] * 2)
    tables = [relax.const(ri, "int32"), relax.const(rw, "float32"),
              relax.const(ci, "int32"), relax.const(cw, "float32")]
    return [emit_kernel(ctx.bb, partial(float_resize, method=spec.method, out_hw=spec.out_hw),
                        x, *tables, name=f"resize_{spec.method}",
                        tag={"op": "resize", "spec": spec.to_json()})]


def _convert_avg_pool(node, ctx, attrs):
    x = ctx.expr(node.input[0])
    return [relax.op.nn.avg_pool2d(
        x, pool_size=attrs["kernel_shape"], strides=attrs.get("strides", [1, 1]),
        padding=_pads(node, attrs, x, attrs["kernel_shape"]),
        count_include_pad=bool(attrs.get("count_include_pad", 0)))]


def _convert_max_pool(node, ctx, attrs):
    x = ctx.expr(node.input[0])
    return [relax.op.nn.max_pool2d(
        x, pool_size=attrs["kernel_shape"], strides=attrs.get("strides", [1, 1]),
        padding=_pads(node, attrs, x, attrs["kernel_shape"]))]


def _convert_global_avg_pool(node, ctx, attrs):
    return [relax.op.mean(ctx.expr(node.input[0]), axis=[2, 3], keepdims=True)]


def _convert_batch_norm(node, ctx, attrs):
    gamma, beta, mean, var = (ctx.value(n).astype(np.float64) for n in node.input[1:5])
    scale = gamma / np.sqrt(var + attrs.get("epsilon", 1e-5))
    shift = beta - mean * scale
    x = ctx.expr(node.input[0])
    shape = (1, -1) + (1,) * (len(x.ty.shape) - 2)
    y = ctx.emit(relax.op.multiply(x, _fconst(scale.reshape(shape))))
    return [relax.op.add(y, _fconst(shift.reshape(shape)))]


def _convert_reshape(node, ctx, attrs):
    return [relax.op.reshape(ctx.expr(node.input[0]), ctx.shapes[node.output[0]])]


def _convert_transpose(node, ctx, attrs):
    x = ctx.expr(node.input[0])
    perm = attrs.get("perm", list(reversed(range(len(x.ty.shape)))))
    return [relax.op.permute_dims(x, perm)]


def _convert_slice(node, ctx, attrs):
    """ONNX Slice with constant parameters as ``strided_slice`` on normalized bounds."""
    x = ctx.expr(node.input[0])
    shape = [int(d) for d in x.ty.shape]
    starts, ends = ctx.value(node.input[1]), ctx.value(node.input[2])
    given = [ctx.value(node.input[i]) if len(node.input) > i and node.input[i] else None
             for i in (3, 4)]
    axes = range(len(starts)) if given[0] is None else given[0]
    steps = np.ones(len(starts), np.int64) if given[1] is None else given[1]
    if np.any(steps <= 0):
        raise UnsupportedOpError(
            f"operator Slice (node {node.name!r}) with steps {steps.tolist()}: only positive "
            "steps are supported; reverse the tensor another way (Transpose, or a positive "
            "step on the reversed axis)")
    axes = [_axis(int(a), len(shape)) for a in axes]
    bounds = [slice(int(b), int(e), int(s)).indices(shape[a])
              for a, b, e, s in zip(axes, starts, ends, steps, strict=True)]
    return [relax.op.strided_slice(x, axes, [b[0] for b in bounds], [b[1] for b in bounds],
                                   [b[2] for b in bounds])]


def _convert_identity(node, ctx, attrs):
    return [ctx.raw(node.input[0])]


CONVERTERS = {
    "QuantizeLinear": _convert_quantize,
    "DequantizeLinear": _convert_dequantize,
    "Conv": _convert_conv,
    "QLinearConv": _convert_qlinear_conv,
    "ConvInteger": _convert_conv_integer,
    "Gemm": _convert_gemm,
    "MatMul": _convert_matmul,
    "Add": _binary(relax.op.add),
    "Sub": _binary(relax.op.subtract),
    "Mul": _binary(relax.op.multiply),
    "Concat": _convert_concat,
    "Relu": lambda node, ctx, attrs: [relax.op.nn.relu(ctx.expr(node.input[0]))],
    "Clip": _convert_clip,
    "Sigmoid": lambda node, ctx, attrs: [relax.op.sigmoid(ctx.expr(node.input[0]))],
    "HardSigmoid": _convert_hard_sigmoid,
    "HardSwish": _convert_hard_swish,
    "Softmax": _convert_softmax,
    "Resize": _convert_resize,
    "AveragePool": _convert_avg_pool,
    "MaxPool": _convert_max_pool,
    "GlobalAveragePool": _convert_global_avg_pool,
    "BatchNormalization": _convert_batch_norm,
    "Reshape": _convert_reshape,
    "Flatten": _convert_reshape,
    "Transpose": _convert_transpose,
    "Slice": _convert_slice,
    "Identity": _convert_identity,
}


def convert(node: onnx.NodeProto, ctx) -> list[object]:
    """Converts one (already support-checked) node; returns its outputs in order."""
    outs = CONVERTERS[node.op_type](node, ctx, _attrs(node))
    return [ctx.emit(o) if isinstance(o, relax.Expr) and not isinstance(o, relax.Var) else o
            for o in outs]
