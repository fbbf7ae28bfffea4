"""DQ → op → Q groups computed in integers: one function per group kind, tried in order.

Each ``lower_*`` takes the float value a QuantizeLinear quantizes and its `OutQuant`,
and returns the int8 result or None when the value is not its kind of group. The
arithmetic is `compiler.int8` exactly as ``docs/int8-arithmetic.md`` specifies it:

* the real factor of each requantization is computed in float64 from the float32
  scales, ``quantize_multiplier`` turns it into ``(M, shift)`` and `int8.requantize`
  rounds ``acc · M / 2^(31 - shift)`` once, half to even;
* Add/Sub share one shift (`int8.shared_shift_multipliers`);
* a ReLU or Clip just before the QuantizeLinear becomes the clamp bounds;
* element-wise functions of one tensor are a 256-entry table built in float32 at
  compile time (`lower_table`): the only float step, and it is not on int8 data.

The order of `GROUPS` is the order in which the compiler's passes claim a pattern,
so a value that two kinds could compute (``Q(DQ(x))`` is a rescale, not a table)
is computed the same way.
"""

from __future__ import annotations

import numpy as np

from compiler import int8
from compiler.reference import kernels
from compiler.reference.values import Dequant, FloatOp, OutQuant, is_op

_F32 = np.float32


def requantize(acc: np.ndarray, real, out: OutQuant, qmin: int | None = None,
               qmax: int | None = None) -> np.ndarray:
    """``acc`` (exact integers) → int8 with ``real``'s multiplier/shift; one rounding."""
    mult, shift = int8.quantize_multiplier(np.asarray(real, dtype=np.float64))
    return int8.requantize(acc, mult.astype(np.int64), shift.astype(np.int64), out.zero_point,
                           out.qmin if qmin is None else qmin, out.qmax if qmax is None else qmax)


def rescale(src: Dequant, q: np.ndarray, out: OutQuant) -> np.ndarray:
    """Integers ``q`` in ``src``'s quantization re-expressed in ``out``'s (identity if equal)."""
    if src.s == out.scale and src.zp == out.zero_point:
        return np.asarray(q).astype(np.int8)
    return requantize(np.asarray(q, dtype=np.int64) - src.zp, src.s / out.scale, out)


def _activation(value, out: OutQuant):
    """Peels one float ReLU / Clip: ``(inner, qmin, qmax)`` (quantization is monotonic)."""
    if is_op(value, "Relu"):
        return value.inputs[0], max(out.qmin, out.zero_point), out.qmax
    if is_op(value, "Clip"):
        lo, hi = value.attrs["bounds"]
        a = int(int8.quantize(lo, out.scale, out.zero_point, out.qmin, out.qmax))
        b = int(int8.quantize(hi, out.scale, out.zero_point, out.qmin, out.qmax))
        return value.inputs[0], max(out.qmin, a), min(out.qmax, b)
    return value, out.qmin, out.qmax


def _activation_in(value) -> Dequant | None:
    """``value`` if it is a dequantized per-tensor int8 activation."""
    if isinstance(value, Dequant) and not value.const and value.per_tensor:
        return value
    return None


def int_bias(bias, acc_scale: np.ndarray, channels: int) -> np.ndarray | None:
    """The bias as int64 per channel at the accumulator scale (float32 ``s_x · s_w[c]``).

    An int32 bias already at that scale (within 1e-6, zero point 0, as Brevitas and
    onnxruntime export it) is used as is; any other bias is dequantized in float32 and
    rounded half to even to the accumulator scale. None if the bias is not constant.
    """
    if bias is None:
        return np.zeros(channels, np.int64)
    if isinstance(bias, Dequant) and bias.const:
        q = bias.q.astype(np.int64).reshape(-1)
        if (np.allclose(bias.scale.reshape(-1), acc_scale, rtol=1e-6)
                and not bias.zero_point.any()):
            return np.broadcast_to(q, (channels,)).copy()
        real = int8.dequantize(q, bias.scale.reshape(-1), bias.zero_point.reshape(-1))
    elif isinstance(bias, np.ndarray):
        real = bias.astype(np.float32).reshape(-1)
    else:
        return None
    return np.rint(np.broadcast_to(real, (channels,)) / acc_scale).astype(np.int64)


def _weight(w) -> Dequant | None:
    if isinstance(w, Dequant) and w.const and w.q.dtype == np.int8 and not w.zero_point.any():
        return w
    return None


def _split_bias(value, op_type: str):
    """``(op, bias)`` for ``op`` with its bias input or ``Add(op without bias, bias)``."""
    if is_op(value, op_type):
        return value, (value.inputs[2] if len(value.inputs) > 2 else None)
    if is_op(value, "Add"):
        for i in (0, 1):
            inner = value.inputs[i]
            if is_op(inner, op_type) and (len(inner.inputs) < 3 or inner.inputs[2] is None):
                return inner, value.inputs[1 - i]
    return None, None


def lower_conv(value, out: OutQuant) -> np.ndarray | None:
    """``Q(act(Conv(DQ x, DQ w) + b))``: int64 conv of ``x - zp_x``, per-channel requantize."""
    inner, qmin, qmax = _activation(value, out)
    conv, bias = _split_bias(inner, "Conv")
    if conv is None:
        return None
    x, w = _activation_in(conv.inputs[0]), _weight(conv.inputs[1])
    if x is None or w is None:
        return None
    channels = w.q.shape[0]
    w_scale = np.broadcast_to(w.scale.reshape(-1), (channels,)).astype(np.float64)
    acc_scale = np.float64(x.s) * w_scale
    b_q = int_bias(bias, acc_scale.astype(np.float32), channels)
    if b_q is None:
        return None
    a = conv.attrs
    acc = kernels.conv2d(x.centered(), w.q, a["strides"], a["pads"], a["dilations"], a["group"])
    acc = acc + b_q.reshape(1, channels, 1, 1)
    real = (acc_scale / np.float64(out.scale)).reshape(1, channels, 1, 1)
    return requantize(acc, real, out, qmin, qmax)


def lower_matmul(value, out: OutQuant) -> np.ndarray | None:
    """``Q(act(x @ W + b))`` for Gemm (transB) and MatMul with a constant int8 ``W``."""
    inner, qmin, qmax = _activation(value, out)
    mm, bias = _split_bias(inner, "Gemm")
    if mm is None:
        mm, bias = _split_bias(inner, "MatMul")
    if mm is None:
        return None
    x, w = _activation_in(mm.inputs[0]), _weight(mm.inputs[1])
    if x is None or w is None or w.q.ndim != 2:
        return None
    w_q, w_axis = w.q, w.axis
    if mm.attrs.get("transB", 0):
        w_q, w_axis = w_q.T, 1 - w_axis
    cols = w_q.shape[1]
    if not w.per_tensor and w_axis != 1:
        return None  # scales along K: not a per-output-channel weight
    acc_scale = np.float64(x.s) * np.broadcast_to(w.scale.reshape(-1), (cols,))
    b_q = int_bias(bias, acc_scale.astype(np.float32), cols)
    if b_q is None:
        return None
    acc = np.matmul(x.centered(), w_q.astype(np.int64)) + b_q
    return requantize(acc, acc_scale / np.float64(out.scale), out, qmin, qmax)


def lower_elementwise(value, out: OutQuant) -> np.ndarray | None:
    """``Q(act(a ± b))`` with one shared shift; ``Q(act(a · b))`` requantized once."""
    inner, qmin, qmax = _activation(value, out)
    if not is_op(inner, "Add", "Sub", "Mul"):
        return None
    a, b = inner.inputs
    if not (isinstance(a, Dequant) and isinstance(b, Dequant) and a.per_tensor
            and b.per_tensor):
        return None
    if inner.op_type == "Mul":
        acc = a.centered() * b.centered()
        return requantize(acc, np.float64(a.s) * b.s / out.scale, out, qmin, qmax)
    (m_a, m_b), n = int8.shared_shift_multipliers([a.s / out.scale, b.s / out.scale])
    ta, tb = a.centered() * m_a, b.centered() * m_b
    p = ta + tb if inner.op_type == "Add" else ta - tb
    y = int8.rounding_right_shift(p, n) + out.zero_point
    return np.clip(y, qmin, qmax).astype(np.int8)


def lower_concat(value, out: OutQuant) -> np.ndarray | None:
    """``Q(Concat(DQ x_1, ..., DQ x_k))``: each input rescaled to the output, then joined."""
    if not is_op(value, "Concat"):
        return None
    parts = value.inputs
    if not all(isinstance(p, Dequant) and p.per_tensor for p in parts):
        return None
    return np.concatenate([rescale(p, p.q, out) for p in parts], axis=value.attrs["axis"])


def lower_avg_pool(value, out: OutQuant) -> np.ndarray | None:
    """Average pools: int64 window sums of ``x - zp``, the count folded into the multiplier."""
    inner, qmin, qmax = _activation(value, out)
    if not is_op(inner, "AveragePool", "GlobalAveragePool"):
        return None
    x = _activation_in(inner.inputs[0])
    if x is None:
        return None
    if inner.op_type == "GlobalAveragePool":
        count = x.q.shape[2] * x.q.shape[3]
        acc = x.centered().sum(axis=(2, 3), keepdims=True)
        return requantize(acc, np.float64(x.s) / (out.scale * count), out, qmin, qmax)
    a = inner.attrs
    (kh, kw), (sh, sw), pads = a["kernel_shape"], a["strides"], a["pads"]
    acc = kernels.window_sums(x.centered(), (kh, kw), (sh, sw), pads)
    if a["count_include_pad"]:
        return requantize(acc, np.float64(x.s) / (out.scale * kh * kw), out, qmin, qmax)
    _, _, h, w = x.q.shape
    _, _, ho, wo = acc.shape
    counts = np.outer(kernels.valid_counts(h, kh, sh, pads[0], ho),
                      kernels.valid_counts(w, kw, sw, pads[1], wo))
    real = np.float64(x.s) / (np.float64(out.scale) * counts)
    return requantize(acc, real.reshape(1, 1, ho, wo), out, qmin, qmax)


def lower_resize(value, out: OutQuant) -> np.ndarray | None:
    """Nearest: integer gathers then a rescale. Bilinear: exact integer weights over D_h·D_w.

    Source coordinates use the Resize's own scale (``attrs["scales"]``), as ONNX says.
    """
    if not is_op(value, "Resize"):
        return None
    x = _activation_in(value.inputs[0])
    if x is None:
        return None
    a = value.attrs
    _, _, h, w = x.q.shape
    _, _, ho, wo = value.out_shape
    mode = a["coordinate_transformation_mode"]
    sh, sw = a.get("scales") or (None, None)
    if a["mode"] == "nearest":
        rows = kernels.nearest_indices(h, ho, mode, a["nearest_mode"], sh)
        cols = kernels.nearest_indices(w, wo, mode, a["nearest_mode"], sw)
        return rescale(x, x.q[:, :, rows][:, :, :, cols], out)
    rows, cols = kernels.linear_taps(h, ho, mode, sh), kernels.linear_taps(w, wo, mode, sw)
    if 255 * rows[4] * cols[4] >= 2**31:
        return None
    acc = kernels.lerp(kernels.lerp(x.centered(), 2, rows), 3, cols)
    real = np.float64(x.s) / (np.float64(out.scale) * rows[4] * cols[4])
    return requantize(acc, real, out)


def lower_requantize(value, out: OutQuant) -> np.ndarray | None:
    """``Q(DQ(x))`` (data movement was already applied to the integers): a rescale."""
    if isinstance(value, Dequant) and value.per_tensor:
        return rescale(value, value.q, out)
    return None


# ---- element-wise functions of one int8 tensor: a 256-entry table ------------------------
class _NotTable(Exception):
    pass


def _hard_sigmoid(x, alpha, beta):
    y = (x * _F32(alpha)).astype(_F32) + _F32(beta)
    return np.minimum(np.maximum(y.astype(_F32), _F32(0.0)), _F32(1.0))


#: ONNX op → its float32 definition on the 256 table inputs (as the frontend imports it).
TABLE_OPS = {
    "Relu": lambda v, a: np.maximum(v[0], _F32(0)),
    "Sigmoid": lambda v, a: _F32(1) / (_F32(1) + np.exp(-v[0])),
    "HardSigmoid": lambda v, a: _hard_sigmoid(v[0], a.get("alpha", 0.2), a.get("beta", 0.5)),
    "HardSwish": lambda v, a: v[0] * _hard_sigmoid(v[0], 1.0 / 6.0, 0.5),
    "Clip": lambda v, a: np.minimum(np.maximum(v[0], _F32(a["bounds"][0])), _F32(a["bounds"][1])),
    "Add": lambda v, a: np.add(v[0], v[1]),
    "Sub": lambda v, a: np.subtract(v[0], v[1]),
    "Mul": lambda v, a: np.multiply(v[0], v[1]),
}


def _table_values(value, leaf: dict) -> np.ndarray:
    if isinstance(value, np.ndarray):
        if value.size != 1 or not np.issubdtype(value.dtype, np.floating):
            raise _NotTable
        return _F32(value.reshape(-1)[0])
    if isinstance(value, Dequant):
        if value.const or not value.per_tensor:
            raise _NotTable
        first = leaf.setdefault("dequant", value)  # after data movement: its own integers
        if first.source is not value.source or first.q.shape != value.q.shape:
            raise _NotTable
        return int8.dequantize(np.arange(-128, 128), value.s, value.zp)
    if not isinstance(value, FloatOp) or value.op_type not in TABLE_OPS:
        raise _NotTable
    args = [_table_values(v, leaf) for v in value.inputs]
    with np.errstate(all="ignore"):
        return np.asarray(TABLE_OPS[value.op_type](args, value.attrs)).astype(_F32)


def lower_table(value, out: OutQuant) -> np.ndarray | None:
    """``Q(f(DQ x))`` for a DAG ``f`` of `TABLE_OPS` over one int8 tensor: ``T[x + 128]``.

    ``T[i] = quantize(f(dequantize(i - 128)))`` in float32, computed once per table (at
    compile time in the compiler); applying it is an integer gather.
    """
    leaf: dict = {}
    try:
        values = _table_values(value, leaf)
    except _NotTable:
        return None
    if leaf.get("dequant") is None or leaf["dequant"].source is None:
        return None
    table = int8.quantize(np.broadcast_to(values, (256,)), out.scale, out.zero_point,
                          out.qmin, out.qmax)
    return table[leaf["dequant"].q.astype(np.int64) + 128]


#: The group kinds, in the order the compiler's passes claim them.
GROUPS = (lower_conv, lower_matmul, lower_elementwise, lower_concat, lower_avg_pool,
          lower_resize, lower_requantize, lower_table)


def lower_group(value, out: OutQuant, kinds=GROUPS) -> np.ndarray | None:
    """The int8 result of ``QuantizeLinear(value)``, or None when none of `kinds` applies."""
    for lower in kinds:
        y = lower(value, out)
        if y is not None:
            return y
    return None


__all__ = ["GROUPS", "TABLE_OPS", "int_bias", "lower_group", "requantize", "rescale"]
