"""LowerQuantizedResize: Before/Expected for int8 nearest and bilinear (half-pixel) resize.

The gather indices and integer weights below are worked out by hand from the ONNX
half-pixel rule ``src = (o + 1/2) · n_in / n_out - 1/2`` for a 2x upsample
(3 → 6 rows, 2 → 4 columns), so the test pins the exact tables the pass computes.
"""

from __future__ import annotations

import numpy as np
import pytest
import tvm
from tvm import relax

from compiler import int8
from compiler.passes import LowerQuantizedResize
from tests.relax_helpers import const as _c
from tests.relax_helpers import f32 as _f32
from tests.relax_helpers import lowering

X = (0.05, 1)  # (scale, zero point) of the input
Y = (0.03, -4)  # of the bilinear output (nearest keeps X)

# Nearest, round_prefer_floor: src rows -0.25, 0.25, 0.75, 1.25, 1.75, 2.25 → 0 0 1 1 2 2.
NEAREST_ROWS = np.array([0, 0, 1, 1, 2, 2], np.int32)
NEAREST_COLS = np.array([0, 0, 1, 1], np.int32)
# Bilinear: src clamped to [0, n_in - 1]; weights are quarters (common denominator D = 4).
ROWS = dict(i0=[0, 0, 0, 1, 1, 2], i1=[1, 1, 1, 2, 2, 2], w0=[4, 3, 1, 3, 1, 4],
            w1=[0, 1, 3, 1, 3, 0])
COLS = dict(i0=[0, 0, 0, 1], i1=[1, 1, 1, 1], w0=[4, 3, 1, 4], w1=[0, 1, 3, 0])


_lower = lowering(LowerQuantizedResize())


def _function(body, out=X, x_scale=X[0], x_zp=X[1]) -> tvm.IRModule:
    """``main(x)``: quantize, ``body(bb, qx)``, dequantize with ``out``."""
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, 2, 3, 2), "float32"))
    axis = 1 if np.ndim(x_scale) else 0
    with bb.function("main", [x]):
        with bb.dataflow():
            qx = bb.emit(relax.op.quantize(x, _c(x_scale, "float32"), _c(x_zp, "int8"),
                                           axis=axis))
            yq = body(bb, qx)
            res = bb.emit_output(relax.op.dequantize(yq, _c(out[0], "float32"),
                                                     _c(out[1], "int8"), axis=0))
        bb.emit_func_output(res)
    return bb.get()


def _float(method, out, x_scale=X[0], x_zp=X[1], mode="half_pixel"):
    def body(bb, qx):
        axis = 1 if np.ndim(x_scale) else 0
        dx = bb.emit(relax.op.dequantize(qx, _c(x_scale, "float32"), _c(x_zp, "int8"),
                                         axis=axis))
        y = bb.emit(relax.op.image.resize2d(dx, (6, 4), method=method,
                                            coordinate_transformation_mode=mode,
                                            rounding_method="round_prefer_floor"))
        return bb.emit(relax.op.quantize(y, _c(out[0], "float32"), _c(out[1], "int8"), axis=0))
    return body


def _lerp(bb, x, axis, taps):
    bshape = [1, 1, 1, 1]
    bshape[axis] = len(taps["i0"])
    a = bb.emit(relax.op.take(x, _c(taps["i0"], "int32"), axis=axis))
    b = bb.emit(relax.op.take(x, _c(taps["i1"], "int32"), axis=axis))
    a = bb.emit(relax.op.multiply(a, _c(np.reshape(taps["w0"], bshape), "int32")))
    b = bb.emit(relax.op.multiply(b, _c(np.reshape(taps["w1"], bshape), "int32")))
    return bb.emit(relax.op.add(a, b))


def _int_bilinear(bb, qx):
    xi = bb.emit(relax.op.subtract(bb.emit(relax.op.astype(qx, "int32")), _c(X[1], "int32")))
    acc = _lerp(bb, _lerp(bb, xi, 2, ROWS), 3, COLS)
    # Divide by D_h · D_w = 16 inside the requantize multiplier.
    mult, shift = int8.quantize_multiplier(np.float64(_f32(X[0])) / (np.float64(_f32(Y[0])) * 16))
    n = 31 - shift.astype(np.int64)
    p = bb.emit(relax.op.multiply(bb.emit(relax.op.astype(acc, "int64")),
                                  _c(mult.astype(np.int64), "int64")))
    odd = bb.emit(relax.op.bitwise_and(bb.emit(relax.op.right_shift(p, _c(n, "int64"))),
                                       _c(1, "int64")))
    r = bb.emit(relax.op.add(bb.emit(relax.op.add(p, _c((1 << (n - 1)) - 1, "int64"))), odd))
    r = bb.emit(relax.op.right_shift(r, _c(n, "int64")))
    r = bb.emit(relax.op.add(r, _c(Y[1], "int64")))
    r = bb.emit(relax.op.clip(r, relax.prim_value(-128), relax.prim_value(127)))
    return bb.emit(relax.op.astype(r, "int8"))


def test_nearest_is_two_int8_gathers():
    def expected(bb, qx):
        rows = bb.emit(relax.op.take(qx, _c(NEAREST_ROWS, "int32"), axis=2))
        return bb.emit(relax.op.take(rows, _c(NEAREST_COLS, "int32"), axis=3))

    before = _function(_float("nearest_neighbor", X))
    tvm.ir.assert_structural_equal(_lower(before), _function(expected))


def test_bilinear_half_pixel_is_separable_integer_lerp_then_requantize():
    before = _function(_float("linear", Y), out=Y)
    tvm.ir.assert_structural_equal(_lower(before), _function(_int_bilinear, out=Y))


@pytest.mark.parametrize("method", ["nearest_neighbor", "linear"])
def test_per_channel_input_params_are_left_alone(method):
    scales, zps = np.array([0.05, 0.04], np.float32), np.zeros(2, np.int8)

    def build():
        return _function(_float(method, X, scales, zps), X, scales, zps)

    tvm.ir.assert_structural_equal(_lower(build()), build())


def test_unsupported_coordinate_mode_is_left_alone():
    def build():
        return _function(_float("linear", Y, mode="tf_half_pixel_for_nn"), out=Y)

    tvm.ir.assert_structural_equal(_lower(build()), build())
