"""DQ → op(s) → Q groups as TFLite int8 builtins: conv, element-wise, concat and pools.

Each ``emit_*`` takes the `Graph` being built, the float value a QuantizeLinear quantizes
(built from `Act` / constant `Dequant` leaves and `FloatOp` nodes, as in
`compiler.reference.groups`), the `OutQuant` of that QuantizeLinear and a name; it
appends the operators and returns the index of the int8 output tensor, or None when
the value is not its kind of group. The groups and their order are those of
`compiler.reference.groups.GROUPS`, so that each ONNX pattern is computed by the
TFLite op that matches the reference's arithmetic:

* conv: DEPTHWISE_CONV_2D (group == input channels, quantized_dimension 3), else CONV_2D
  (per-channel int8 weights, quantized_dimension 0; a grouped conv's filter holds
  ``cin / group`` input channels, from which TFLite infers the groups); int32 bias at
  ``s_x · s_w[c]``; a ReLU / Clip before the QuantizeLinear becomes the fused
  activation; ONNX pads that are not TFLite's SAME become an explicit PAD (filled with
  the input zero point);
* add / sub / mul: ADD / SUB / MUL (with broadcasting and a fused activation);
* concat: CONCATENATION, each input first rescaled (QUANTIZE) to the output's quantization;
* pools: MEAN over H, W for GlobalAveragePool, AVERAGE_POOL_2D for AveragePool (in
  int16 between two QUANTIZEs when the output scale is less than half the input's).

Resize, requantize and the element-wise functions of one tensor are in
`compiler.tflite.unary`; `compiler.tflite.groups` tries the kinds in order.
"""

from __future__ import annotations

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from compiler.errors import UnsupportedOpError
from compiler.int4 import weight_digest
from compiler.reference.groups import _activation, _split_bias, int_bias
from compiler.reference.values import Dequant, OutQuant, is_op
from compiler.tflite.model import Act, Graph, Quant, nhwc, tflite_axis

_ACT = schema.ActivationFunctionType
_PAD = schema.Padding


def tflite_quant(out: OutQuant) -> Quant:
    """The TFLite quantization of a group's output."""
    return Quant.per_tensor(out.scale, out.zero_point)


def round_away(x: np.float32) -> int:
    """TfLiteRound: half away from zero."""
    return int(np.sign(x) * np.floor(np.abs(x) + np.float32(0.5)))


def fused_activation(qmin: int, qmax: int, out: OutQuant, what: str) -> int:
    """The `ActivationFunctionType` whose TFLite clamp range equals ``[qmin, qmax]``.

    TFLite derives the clamp of a fused activation from the output quantization
    (``CalculateActivationRangeQuantized``); the range our groups compute from a ReLU /
    Clip must be the same integers, else the group cannot be one TFLite op.
    """
    zp, s = out.zero_point, np.float32(out.scale)

    def q(v: float) -> int:
        return zp + round_away(np.float32(v) / s)

    candidates = {
        _ACT.NONE: (-128, 127),
        _ACT.RELU: (max(-128, zp), 127),
        _ACT.RELU6: (max(-128, zp), min(127, q(6.0))),
        _ACT.RELU_N1_TO_1: (max(-128, q(-1.0)), min(127, q(1.0))),
    }
    for code, bounds in candidates.items():
        if bounds == (qmin, qmax):
            return code
    raise UnsupportedOpError(
        f"{what}: the ReLU/Clip before its QuantizeLinear clamps to [{qmin}, {qmax}], which is "
        "no TFLite fused activation (NONE, RELU, RELU6, RELU_N1_TO_1) in the output "
        f"quantization (scale {out.scale}, zero point {out.zero_point}); use ReLU, ReLU6 or "
        "a Clip to [-1, 1]")


def as_act(value) -> Act | None:
    """``value`` if it is a dequantized int8 activation, else None."""
    return value if isinstance(value, Act) else None


def requantize(g: Graph, x: int, quant: Quant, name: str) -> int:
    """``x`` re-expressed in ``quant`` with a QUANTIZE (int8 → int8); ``x`` itself if equal."""
    src = g.tensors[x]
    if src.quant == quant:
        return x
    y = g.tensor(name, src.shape, "int8", quant)
    g.op("QUANTIZE", [x], [y])
    return y


# ---- conv --------------------------------------------------------------------------------
def _same_or_pad(size_hw, kernel, strides, dilations, pads):
    """``(padding, explicit)``: SAME/VALID when ONNX ``pads`` equal it, else VALID + PAD."""
    if not any(pads):
        return _PAD.VALID, None
    same = True
    for i in range(2):
        n, k, s, d = size_hw[i], kernel[i], strides[i], dilations[i]
        out = -(-n // s)
        total = max((out - 1) * s + (k - 1) * d + 1 - n, 0)
        if (pads[i], pads[i + 2]) != (total // 2, total - total // 2):
            same = False
    if same:
        return _PAD.SAME, None
    return _PAD.VALID, ((pads[0], pads[2]), (pads[1], pads[3]))


def pad(g: Graph, x: int, hw_pads, name: str) -> int:
    """An explicit PAD of an NHWC tensor over H and W, filled with its zero point."""
    src = g.tensors[x]
    (t, b), (left, r) = hw_pads
    n, h, w, c = src.shape
    paddings = g.const(f"{name}/paddings",
                       np.array([[0, 0], [t, b], [left, r], [0, 0]], np.int32), "int32")
    y = g.tensor(f"{name}/pad", (n, h + t + b, w + left + r, c), "int8", src.quant)
    g.op("PAD", [x, paddings], [y])
    return y


def emit_conv(g: Graph, value, out: OutQuant, name: str) -> int | None:
    """``Q(act(Conv(DQ x, DQ w) + b))`` as CONV_2D / DEPTHWISE_CONV_2D (per-channel weights)."""
    inner, qmin, qmax = _activation(value, out)
    conv, bias = _split_bias(inner, "Conv")
    if conv is None:
        return None
    x, w = as_act(conv.inputs[0]), conv.inputs[1]
    if x is None or not (isinstance(w, Dequant) and w.const and w.q.dtype == np.int8
                         and not w.zero_point.any() and (w.per_tensor or w.axis == 0)):
        return None
    channels, in_per_group, kh, kw = w.q.shape
    w_scale = np.broadcast_to(w.scale.reshape(-1), (channels,)).astype(np.float64)
    acc_scale = np.float64(x.s) * w_scale
    b_q = int_bias(bias, acc_scale.astype(np.float32), channels)
    if b_q is None:
        return None
    what = conv.describe()
    if np.abs(b_q).max(initial=0) >= 2**31:
        raise UnsupportedOpError(f"{what}: bias does not fit int32 at scale s_x·s_w")
    a = conv.attrs
    act = fused_activation(qmin, qmax, out, what)
    xt = x.tensor
    _, cin, h, wd = x.shape
    padding, explicit = _same_or_pad((h, wd), (kh, kw), a["strides"], a["dilations"], a["pads"])
    if explicit is not None:
        xt = pad(g, xt, explicit, name)
    y_shape = nhwc(conv.out_shape)
    group = a["group"]
    bias_quant = Quant(tuple(np.float32(acc_scale)), (0,) * channels, 0)
    if in_per_group == 1 and group == cin:
        wq = Quant(tuple(w_scale), (0,) * channels, 3)
        wt = g.const(f"{name}/weights", w.q.transpose(1, 2, 3, 0), "int8", wq)
        opts = schema.DepthwiseConv2DOptionsT()
        opts.depthMultiplier = channels // cin
        opcode = "DEPTHWISE_CONV_2D"
    else:
        # Any other grouping is the same CONV_2D: its filter (O, KH, KW, cin / group) holds
        # each group's input channels, and TFLite takes the group count from the input and
        # filter depths (cin / filter depth), as TFLite Micro's and LiteRT's kernels do.
        wq = Quant(tuple(w_scale), (0,) * channels, 0)
        int4 = weight_digest(w.q) in g.int4_weights  # TFLite Micro's INT4 filters
        wt = g.const(f"{name}/weights", w.q.transpose(0, 2, 3, 1), "int4" if int4 else "int8",
                     wq)
        opts = schema.Conv2DOptionsT()
        opcode = "CONV_2D"
    bt = g.const(f"{name}/bias", b_q.astype(np.int32), "int32", bias_quant)
    y = g.tensor(name, y_shape, "int8", tflite_quant(out))
    opts.padding, opts.fusedActivationFunction = padding, act
    opts.strideH, opts.strideW = a["strides"]
    opts.dilationHFactor, opts.dilationWFactor = a["dilations"]
    g.op(opcode, [xt, wt, bt], [y], opts)
    return y


# ---- element-wise ------------------------------------------------------------------------
def _operand(g: Graph, v, rank: int, name: str) -> int | None:
    """A TFLite tensor for an Add/Mul operand: an activation, or a per-tensor int8 constant."""
    if isinstance(v, Act):
        return v.tensor
    if isinstance(v, Dequant) and v.const and v.per_tensor and v.q.dtype == np.int8:
        q = v.q.reshape((1,) * (rank - v.q.ndim) + v.q.shape)
        return g.const(name, q.transpose(0, 2, 3, 1) if rank == 4 else q, "int8",
                       Quant.per_tensor(v.s, v.zp))
    return None


def emit_elementwise(g: Graph, value, out: OutQuant, name: str) -> int | None:
    """``Q(act(a ± b))`` / ``Q(act(a · b))`` as ADD / SUB / MUL with a fused activation."""
    inner, qmin, qmax = _activation(value, out)
    if not is_op(inner, "Add", "Sub", "Mul"):
        return None
    a, b = inner.inputs
    if not any(isinstance(v, Act) for v in (a, b)):
        return None
    rank = len(inner.out_shape)
    if any(isinstance(v, Act) and len(v.shape) != rank for v in (a, b)):
        raise UnsupportedOpError(f"{inner.describe()}: broadcasting activations of different "
                                 "ranks; reshape the operands to the same rank first")
    ta, tb = _operand(g, a, rank, f"{name}/a"), _operand(g, b, rank, f"{name}/b")
    if ta is None or tb is None:
        return None
    what = inner.describe()
    opcode = {"Add": "ADD", "Sub": "SUB", "Mul": "MUL"}[inner.op_type]
    opts = {"ADD": schema.AddOptionsT, "SUB": schema.SubOptionsT, "MUL": schema.MulOptionsT}
    options = opts[opcode]()
    options.fusedActivationFunction = fused_activation(qmin, qmax, out, what)
    y = g.tensor(name, nhwc(inner.out_shape), "int8", tflite_quant(out))
    g.op(opcode, [ta, tb], [y], options)
    return y


def emit_concat(g: Graph, value, out: OutQuant, name: str) -> int | None:
    """``Q(Concat(DQ x_1, ...))``: inputs rescaled to the output (QUANTIZE), CONCATENATION."""
    if not is_op(value, "Concat") or not all(isinstance(p, Act) for p in value.inputs):
        return None
    parts = [requantize(g, p.tensor, tflite_quant(out), f"{name}/in{i}")
             for i, p in enumerate(value.inputs)]
    y = g.tensor(name, nhwc(value.out_shape), "int8", tflite_quant(out))
    opts = schema.ConcatenationOptionsT()
    opts.axis = tflite_axis(value.attrs["axis"], len(value.out_shape))
    g.op("CONCATENATION", parts, [y], opts)
    return y


# ---- pools -------------------------------------------------------------------------------
def emit_avg_pool(g: Graph, value, out: OutQuant, name: str) -> int | None:
    """GlobalAveragePool as MEAN over H, W; AveragePool as AVERAGE_POOL_2D (+ QUANTIZE)."""
    inner, qmin, qmax = _activation(value, out)
    if not is_op(inner, "AveragePool", "GlobalAveragePool"):
        return None
    x = as_act(inner.inputs[0])
    if x is None or len(x.shape) != 4:
        return None
    what = inner.describe()
    if inner.op_type == "GlobalAveragePool":
        if (qmin, qmax) != (-128, 127):
            raise UnsupportedOpError(f"{what}: a ReLU/Clip after GlobalAveragePool has no "
                                     "TFLite MEAN equivalent; drop it (the mean of a ReLU "
                                     "output is already >= 0)")
        axes = g.const(f"{name}/axes", np.array([1, 2], np.int32), "int32")
        y = g.tensor(name, nhwc(inner.out_shape), "int8", tflite_quant(out))
        opts = schema.ReducerOptionsT()
        opts.keepDims = True
        g.op("MEAN", [x.tensor, axes], [y], opts)
        return y
    a = inner.attrs
    kernel, strides, pads = a["kernel_shape"], a["strides"], a["pads"]
    _, _, h, w = x.shape
    padding, explicit = _same_or_pad((h, w), kernel, strides, (1, 1), pads)
    xt = x.tensor
    if explicit is not None or (padding == _PAD.SAME and a["count_include_pad"]):
        if not a["count_include_pad"]:
            raise UnsupportedOpError(
                f"{what}: pads {list(pads)} with count_include_pad=0 are neither TFLite SAME "
                "nor VALID; use symmetric 'same' padding or count_include_pad=1")
        xt = pad(g, xt, explicit or ((pads[0], pads[2]), (pads[1], pads[3])), name)
        padding = _PAD.VALID
    if x.s > 2.0 * out.scale:
        return _avg_pool_int16(g, xt, inner, padding, qmin, qmax, out, name)
    same_quant = x.quant == tflite_quant(out)
    act = fused_activation(qmin, qmax, out, what) if same_quant else _ACT.NONE
    if not same_quant and (qmin, qmax) != (-128, 127):
        raise UnsupportedOpError(f"{what}: a ReLU/Clip after an AveragePool that changes the "
                                 "quantization; quantize the pool output with its input's "
                                 "quantizer or drop the activation")
    y = g.tensor(f"{name}/pool" if not same_quant else name, nhwc(inner.out_shape), "int8",
                 x.quant)
    opts = schema.Pool2DOptionsT()
    opts.padding, opts.fusedActivationFunction = padding, act
    opts.strideH, opts.strideW = strides
    opts.filterHeight, opts.filterWidth = kernel
    g.op("AVERAGE_POOL_2D", [xt], [y], opts)
    return requantize(g, y, tflite_quant(out), name)


def _avg_pool_int16(g: Graph, xt: int, pool, padding: int, qmin: int, qmax: int,
                    out: OutQuant, name: str) -> int:
    """AveragePool through int16: QUANTIZE to ``s_x / 128``, AVERAGE_POOL_2D, QUANTIZE.

    Used when the output scale is much finer than the input's: an int8 AVERAGE_POOL_2D
    rounds the mean to an input LSB, which the QUANTIZE after it would magnify to
    several output LSBs (TopFormer's token pooling). At ``s_x / 128`` (int16, zero point
    0: ``|q − zp| · 128 ≤ 32640``) the mean keeps 7 more bits, so the result is within
    1 LSB of the reference's single rounding; every op stays on the Ethos-U NPU.
    """
    if (qmin, qmax) != (-128, 127):
        raise UnsupportedOpError(f"{pool.describe()}: a ReLU/Clip after an AveragePool that "
                                 "changes the quantization; drop the activation")
    src = g.tensors[xt]
    wide = Quant.per_tensor(src.quant.s / 128.0, 0)
    x16 = g.tensor(f"{name}/int16", src.shape, "int16", wide)
    g.op("QUANTIZE", [xt], [x16])
    y16 = g.tensor(f"{name}/pool", nhwc(pool.out_shape), "int16", wide)
    opts = schema.Pool2DOptionsT()
    opts.padding, opts.fusedActivationFunction = padding, _ACT.NONE
    opts.strideH, opts.strideW = pool.attrs["strides"]
    opts.filterHeight, opts.filterWidth = pool.attrs["kernel_shape"]
    g.op("AVERAGE_POOL_2D", [x16], [y16], opts)
    y = g.tensor(name, nhwc(pool.out_shape), "int8", tflite_quant(out))
    g.op("QUANTIZE", [y16], [y])
    return y
