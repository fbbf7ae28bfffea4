"""LowerQuantizedResize: int8 nearest and bilinear resize with integer indices and weights.

Source coordinates follow ONNX Resize exactly (half_pixel, pytorch_half_pixel,
align_corners, asymmetric; the nearest modes) and are computed *at compile time*
with exact rational arithmetic, so the kernels hold only integer gathers:

* nearest: ``y_q = take(take(x_q, rows, axis=2), cols, axis=3)`` (then rescale);
* bilinear, separable, weights as integers over a per-axis denominator ``D``::

      r   = take(x - zp, i0, 2) · W0 + take(x - zp, i1, 2) · W1        (int32)
      acc = take(r, j0, 3) · V0 + take(r, j1, 3) · V1
      y_q = requantize(acc, s_x / (s_y · D_h · D_w), zp_y)

  ``D`` is the common denominator of the exact weights, so a 2× upsample is exact
  (``D = 4``); denominators above 2^11 fall back to weights rounded to 1/2^11.
"""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from tvm import relax

from compiler.passes._common import QParams, QuantRewriter, is_op, rewrite_pass, shape_of

_MAX_DENOMINATOR = 1 << 11


def source_coordinate(o: int, n_in: int, n_out: int, mode: str) -> Fraction:
    """The exact ONNX Resize source coordinate of output index ``o`` along one axis."""
    scale = Fraction(n_out, n_in)
    if mode == "align_corners":
        return Fraction(o * (n_in - 1), n_out - 1) if n_out > 1 else Fraction(0)
    if mode == "asymmetric":
        return o / scale
    if mode == "pytorch_half_pixel" and n_out == 1:
        return Fraction(0)
    return (o + Fraction(1, 2)) / scale - Fraction(1, 2)  # half_pixel


def nearest_indices(n_in: int, n_out: int, mode: str, rounding: str) -> np.ndarray:
    """Input indices of ONNX nearest-neighbour resize along one axis."""
    out = []
    for o in range(n_out):
        x = source_coordinate(o, n_in, n_out, mode)
        fl = math.floor(x)
        if rounding == "floor":
            i = fl
        elif rounding == "ceil":
            i = math.ceil(x)
        elif rounding == "round_prefer_ceil":
            i = fl + 1 if x - fl >= Fraction(1, 2) else fl
        else:  # round_prefer_floor (ONNX default) and "round"
            i = fl + 1 if x - fl > Fraction(1, 2) else fl
        out.append(min(max(i, 0), n_in - 1))
    return np.array(out, dtype=np.int32)


def linear_taps(n_in: int, n_out: int, mode: str):
    """``(i0, i1, w0, w1, D)``: bilinear taps along one axis with integer weights over D."""
    i0, i1, fracs = [], [], []
    for o in range(n_out):
        x = min(max(source_coordinate(o, n_in, n_out, mode), Fraction(0)), Fraction(n_in - 1))
        fl = math.floor(x)
        i0.append(fl)
        i1.append(min(fl + 1, n_in - 1))
        fracs.append(x - fl)
    denom = math.lcm(*(f.denominator for f in fracs))
    if denom <= _MAX_DENOMINATOR:
        w1 = np.array([int(f * denom) for f in fracs], dtype=np.int32)
    else:
        denom = _MAX_DENOMINATOR
        w1 = np.array([round(f * denom) for f in fracs], dtype=np.int32)
    return (np.array(i0, np.int32), np.array(i1, np.int32), denom - w1, w1, denom)


class ResizeRewriter(QuantRewriter):
    """Rewrites quantized resize2d (nearest and linear, NCHW)."""

    def lerp(self, x: relax.Expr, axis: int, taps) -> relax.Expr:
        """One separable bilinear step along ``axis`` (int32 in, int32 out)."""
        i0, i1, w0, w1, _ = taps
        bshape = [1, 1, 1, 1]
        bshape[axis] = len(i0)
        a = self.emit(relax.op.take(x, relax.const(i0, "int32"), axis=axis))
        b = self.emit(relax.op.take(x, relax.const(i1, "int32"), axis=axis))
        a = self.emit(relax.op.multiply(a, relax.const(w0.reshape(bshape), "int32")))
        b = self.emit(relax.op.multiply(b, relax.const(w1.reshape(bshape), "int32")))
        return self.emit(relax.op.add(a, b))

    def rewrite(self, call: relax.Call, out: QParams) -> relax.Expr | None:
        """See the module docstring."""
        node = self.producer(call.args[0])
        if not is_op(node, "relax.image.resize2d") or str(node.attrs.layout) != "NCHW":
            return None
        src = self.dequantized(node.args[0])
        if src is None or not src[1].per_tensor or src[1].dtype != "int8":
            return None
        x_q, xp = src
        _, _, h, w = shape_of(x_q)
        _, _, ho, wo = shape_of(node)
        mode = str(node.attrs.coordinate_transformation_mode)
        if mode not in ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric"):
            return None
        if str(node.attrs.method) == "nearest_neighbor":
            rounding = str(node.attrs.rounding_method)
            y = self.emit(relax.op.take(x_q, relax.const(
                nearest_indices(h, ho, mode, rounding), "int32"), axis=2))
            y = self.emit(relax.op.take(y, relax.const(
                nearest_indices(w, wo, mode, rounding), "int32"), axis=3))
            return self.rescale(y, xp, out)
        if str(node.attrs.method) != "linear":
            return None
        rows, cols = linear_taps(h, ho, mode), linear_taps(w, wo, mode)
        if 255 * rows[4] * cols[4] >= 2**31:
            return None
        xi = self.to_int(x_q, "int32", xp.zp)
        acc = self.lerp(self.lerp(xi, 2, rows), 3, cols)
        lo, hi = out.qrange()
        real = np.float64(xp.s) / (np.float64(out.s) * rows[4] * cols[4])
        return self.requantize(acc, real, out.zp, lo, hi)


def LowerQuantizedResize():  # noqa: N802 - TVM pass naming
    """The pass: quantized Resize becomes integer gathers and multiply-adds."""
    return rewrite_pass("LowerQuantizedResize", ResizeRewriter)
