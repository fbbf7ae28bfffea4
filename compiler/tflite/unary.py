"""Single-input groups as TFLite int8 builtins: resize, requantize, element-wise functions.

* resize: RESIZE_BILINEAR / RESIZE_NEAREST_NEIGHBOR (in the input's quantization) and a
  QUANTIZE to the output's;
* requantize: QUANTIZE (int8 → int8), nothing when the quantization is unchanged;
* tables: LOGISTIC (+ QUANTIZE from its fixed 1/256, −128 output), HARD_SWISH (also for
  ``x · HardSigmoid(x)``, HardSwish as opset 13 exports it), RELU, RELU6 and
  RELU_N1_TO_1 (+ QUANTIZE: TFLite Micro clamps them without rescaling); HardSigmoid
  (TFLite has none) as an ADD with a fused RELU6 and a rescaling MUL.

Each ``emit_*`` has the contract of `compiler.tflite.ops`.
"""

from __future__ import annotations

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from compiler.errors import UnsupportedOpError
from compiler.reference import kernels
from compiler.reference.values import FloatOp, OutQuant, is_op
from compiler.tflite.model import Act, Graph, Quant, nhwc
from compiler.tflite.ops import as_act, requantize, round_away, tflite_quant


# ---- resize ------------------------------------------------------------------------------
def _tflite_nearest(n_in: int, n_out: int, align: bool, half: bool) -> np.ndarray:
    """TFLite's GetNearestNeighbor for every output index (float32 like the kernel)."""
    f32 = np.float32
    scale = (f32(n_in - 1) / f32(n_out - 1)) if align and n_out > 1 else f32(n_in) / f32(n_out)
    x = (np.arange(n_out, dtype=f32) + f32(0.5 if half else 0.0)) * scale
    idx = np.array([round_away(v) for v in x]) if align else np.floor(x).astype(np.int64)
    idx = np.minimum(idx, n_in - 1)
    return np.maximum(idx, 0) if half else idx


def _resize_flags(value, h, w, ho, wo) -> tuple[bool, bool]:
    a = value.attrs
    mode = a["coordinate_transformation_mode"]
    sh, sw = a.get("scales") or (None, None)
    if a["mode"] == "nearest":
        want = (kernels.nearest_indices(h, ho, mode, a["nearest_mode"], sh),
                kernels.nearest_indices(w, wo, mode, a["nearest_mode"], sw))
        for align, half in ((False, False), (False, True), (True, False)):
            got = (_tflite_nearest(h, ho, align, half), _tflite_nearest(w, wo, align, half))
            if all(np.array_equal(x, y) for x, y in zip(got, want, strict=True)):
                return align, half
        raise UnsupportedOpError(
            f"{value.describe()}: nearest resize with coordinate_transformation_mode={mode}, "
            f"nearest_mode={a['nearest_mode']} picks source pixels that no TFLite "
            "RESIZE_NEAREST_NEIGHBOR setting reproduces for "
            f"{h}x{w} -> {ho}x{wo}; use asymmetric + floor (PyTorch 'nearest')")
    if any(s is not None and s * n != o for s, n, o in ((sh, h, ho), (sw, w, wo))):
        raise UnsupportedOpError(
            f"{value.describe()}: bilinear resize by scales {sh}, {sw} that are not "
            f"{ho}/{h}, {wo}/{w}: TFLite RESIZE_BILINEAR derives its coordinates from the "
            "output size; give the Resize `sizes` (or scales with integer output lengths)")
    if mode == "pytorch_half_pixel" and min(ho, wo) == 1:
        raise UnsupportedOpError(f"{value.describe()}: pytorch_half_pixel to a size of 1 has "
                                 "no TFLite equivalent")
    flags = {"half_pixel": (False, True), "half_pixel_symmetric": (False, True),
             "pytorch_half_pixel": (False, True), "align_corners": (True, False),
             "asymmetric": (False, False)}
    if mode not in flags:
        raise UnsupportedOpError(f"{value.describe()}: bilinear resize with "
                                 f"coordinate_transformation_mode={mode} has no TFLite "
                                 f"equivalent; use one of {', '.join(sorted(flags))}")
    return flags[mode]


def emit_resize(g: Graph, value, out: OutQuant, name: str) -> int | None:
    """Resize as RESIZE_BILINEAR / RESIZE_NEAREST_NEIGHBOR, then a QUANTIZE to the output."""
    if not is_op(value, "Resize"):
        return None
    x = as_act(value.inputs[0])
    if x is None or len(x.shape) != 4:
        return None
    _, _, h, w = x.shape
    _, _, ho, wo = value.out_shape
    if value.out_shape[:2] != x.shape[:2]:
        raise UnsupportedOpError(f"{value.describe()}: only H and W may be resized")
    align, half = _resize_flags(value, h, w, ho, wo)
    size = g.const(f"{name}/size", np.array([ho, wo], np.int32), "int32")
    linear = value.attrs["mode"] == "linear"
    opts = schema.ResizeBilinearOptionsT() if linear else schema.ResizeNearestNeighborOptionsT()
    opts.alignCorners, opts.halfPixelCenters = align, half
    y = g.tensor(f"{name}/resize", nhwc(value.out_shape), "int8", x.quant)
    g.op("RESIZE_BILINEAR" if linear else "RESIZE_NEAREST_NEIGHBOR", [x.tensor, size], [y], opts)
    return requantize(g, y, tflite_quant(out), name)


def emit_requantize(g: Graph, value, out: OutQuant, name: str) -> int | None:
    """``Q(DQ(x))``: a QUANTIZE, or the same tensor when the quantization is unchanged."""
    if isinstance(value, Act):
        return requantize(g, value.tensor, tflite_quant(out), name)
    return None


# ---- element-wise functions of one tensor ------------------------------------------------
#: Clip bounds → the TFLite activation op that computes them.
_CLIPS = {(0.0, 6.0): "RELU6", (-1.0, 1.0): "RELU_N1_TO_1"}


def _hard_swish_input(value) -> Act | None:
    """``x`` of ``Mul(x, HardSigmoid(x))`` with the HardSwish constants (opset < 14 export)."""
    if not is_op(value, "Mul"):
        return None
    for i in (0, 1):
        x, hs = value.inputs[i], value.inputs[1 - i]
        if (isinstance(x, Act) and is_op(hs, "HardSigmoid") and hs.inputs[0] is x
                and np.isclose(hs.attrs.get("alpha", 0.2), 1.0 / 6.0)
                and hs.attrs.get("beta", 0.5) == 0.5):
            return x
    return None


def _hard_sigmoid(g: Graph, value, x: Act, out: OutQuant, name: str) -> int:
    """``clip(α·x + β, 0, 1)`` as ADD(x, β/α) + RELU6-style clamp, then MUL by α.

    TFLite has no HARD_SIGMOID. The ADD writes ``x + β/α`` at scale ``s_out / α`` with the
    output's zero point, clamped to ``[0, 1/α]`` (RELU6 when 1/α is 6, TopFormer's
    h-sigmoid), so its integers are already those of the result; the MUL by ``α``
    (an int8 constant, multiplier 1) changes only the scale, and its rounding is exact.
    """
    alpha, beta = float(value.attrs.get("alpha", 0.2)), float(value.attrs.get("beta", 0.5))
    if not np.isclose(1.0 / alpha, 6.0) or not np.isclose(beta / alpha, 3.0):
        raise UnsupportedOpError(
            f"{value.describe()}: HardSigmoid with alpha {alpha}, beta {beta} has no TFLite "
            "int8 form; use PyTorch's hardsigmoid (alpha 1/6, beta 0.5)")
    shape = nhwc(value.out_shape or x.shape)
    wide = Quant.per_tensor(out.scale / alpha, out.zero_point)
    offset = g.const(f"{name}/offset", np.full((1,) * len(shape), 127, np.int8), "int8",
                     Quant.per_tensor(beta / alpha / 127.0, 0))
    shifted = g.tensor(f"{name}/shifted", shape, "int8", wide)
    opts = schema.AddOptionsT()
    opts.fusedActivationFunction = schema.ActivationFunctionType.RELU6
    g.op("ADD", [x.tensor, offset], [shifted], opts)
    scale = g.const(f"{name}/alpha", np.full((1,) * len(shape), 127, np.int8), "int8",
                    Quant.per_tensor(alpha / 127.0, 0))
    y = g.tensor(name, shape, "int8", tflite_quant(out))
    g.op("MUL", [shifted, scale], [y], schema.MulOptionsT())
    return y


def emit_table(g: Graph, value, out: OutQuant, name: str) -> int | None:
    """Sigmoid → LOGISTIC, HardSwish → HARD_SWISH, HardSigmoid → ADD + MUL, Relu → RELU,
    Clip → RELU6 / RELU_N1_TO_1.

    LOGISTIC has a fixed int8 output quantization (1/256, −128) and TFLite Micro's
    RELU6 / RELU_N1_TO_1 clamp without rescaling, so those run in their own
    quantization and a QUANTIZE brings the result to the group's.
    """
    if not isinstance(value, FloatOp) or len(value.inputs) < 1:
        return None
    hard_swish = _hard_swish_input(value)
    x = hard_swish or as_act(value.inputs[0])
    if x is None:
        return None
    op = "HardSwish" if hard_swish is not None else value.op_type
    shape = nhwc(value.out_shape or x.shape)
    if op == "Sigmoid":
        y = g.tensor(f"{name}/logistic", shape, "int8", Quant.per_tensor(1.0 / 256.0, -128))
        g.op("LOGISTIC", [x.tensor], [y])
        return requantize(g, y, tflite_quant(out), name)
    if op == "HardSigmoid":
        return _hard_sigmoid(g, value, x, out, name)
    if op in ("HardSwish", "Relu"):
        y = g.tensor(name, shape, "int8", tflite_quant(out))
        g.op({"HardSwish": "HARD_SWISH", "Relu": "RELU"}[op], [x.tensor], [y])
        return y
    if op == "Clip":
        lo, hi = value.attrs["bounds"]
        if lo == 0.0 and hi >= 3.0e38:
            y = g.tensor(name, shape, "int8", tflite_quant(out))
            g.op("RELU", [x.tensor], [y])
            return y
        opcode = _CLIPS.get((lo, hi))
        if opcode is None:
            raise UnsupportedOpError(
                f"{value.describe()}: Clip to [{lo}, {hi}] alone has no TFLite int8 op; "
                "fuse it into the preceding conv/add (a ReLU6 or ReLU) or use [0, 6] / [-1, 1]")
        y = g.tensor(f"{name}/{opcode.lower()}", shape, "int8", x.quant)
        g.op(opcode, [x.tensor], [y])
        return requantize(g, y, tflite_quant(out), name)
    return None
