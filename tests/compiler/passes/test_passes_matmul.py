"""LowerQuantizedMatmul: Before/Expected for an int8 Gemm (per-column weights, bias, clip)."""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax

from compiler import int8
from compiler.passes import LowerQuantizedMatmul
from tests.support.relax_helpers import const as _c
from tests.support.relax_helpers import f32 as _f32
from tests.support.relax_helpers import lowering

RNG = np.random.default_rng(0)
K, N = 8, 4
W = RNG.integers(-127, 128, (K, N)).astype(np.int8)
W_SCALE = np.array([0.01, 0.02, 0.015, 0.03], np.float32)  # per output column (axis 1)
BIAS = np.array([100, -50, 7, 0], np.int32)  # at scale s_x · s_W, zero point 0
X = (0.05, 2)  # (scale, zero point) of the input
Y = (0.1, -5)  # of the output


_lower = lowering(LowerQuantizedMatmul())


def _requantize(bb, acc, real, zp, lo, hi):
    """`_common.QuantRewriter.requantize` emitted by hand; per-column when ``real`` is a vector."""
    mult, shift = int8.quantize_multiplier(np.asarray(real, np.float64))
    n = 31 - shift.astype(np.int64)
    p = bb.emit(relax.op.multiply(bb.emit(relax.op.astype(acc, "int64")),
                                  _c(mult.astype(np.int64), "int64")))
    odd = bb.emit(relax.op.bitwise_and(bb.emit(relax.op.right_shift(p, _c(n, "int64"))),
                                       _c(1, "int64")))
    r = bb.emit(relax.op.add(bb.emit(relax.op.add(p, _c((1 << (n - 1)) - 1, "int64"))), odd))
    r = bb.emit(relax.op.right_shift(r, _c(n, "int64")))
    r = bb.emit(relax.op.add(r, _c(zp, "int64")))
    r = bb.emit(relax.op.clip(r, relax.prim_value(lo), relax.prim_value(hi)))
    return bb.emit(relax.op.astype(r, "int8"))


def _function(body, x_scale=X[0], x_zp=X[1], weight_param=False) -> tvm.IRModule:
    """``main(x[, w])``: quantize ``x``, ``body(bb, qx, w)``, dequantize the result."""
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((2, K), "float32"))
    params = [x]
    if weight_param:
        params.append(relax.Var("w", relax.TensorType((K, N), "int8")))
    axis = 1 if np.ndim(x_scale) else 0
    with bb.function("main", params):
        with bb.dataflow():
            qx = bb.emit(relax.op.quantize(x, _c(x_scale, "float32"), _c(x_zp, "int8"),
                                           axis=axis))
            yq = body(bb, qx, params[1] if weight_param else _c(W, "int8"))
            out = bb.emit_output(relax.op.dequantize(yq, _c(Y[0], "float32"), _c(Y[1], "int8"),
                                                     axis=0))
        bb.emit_func_output(out)
    return bb.get()


def _float(w_scale, bias=True, clip=True, x_scale=X[0], x_zp=X[1]):
    def body(bb, qx, w):
        axis = 1 if np.ndim(x_scale) else 0
        dx = bb.emit(relax.op.dequantize(qx, _c(x_scale, "float32"), _c(x_zp, "int8"),
                                         axis=axis))
        dw = bb.emit(relax.op.dequantize(w, _c(w_scale, "float32"),
                                         _c(np.zeros(np.shape(w_scale)), "int8"), axis=1))
        y = bb.emit(relax.op.matmul(dx, dw))
        if bias:
            b_scale = np.float32(X[0]) * w_scale
            db = bb.emit(relax.op.dequantize(_c(BIAS, "int32"), _c(b_scale, "float32"),
                                             _c(np.zeros(N), "int32"), axis=0))
            y = bb.emit(relax.op.add(y, db))
        if clip:
            y = bb.emit(relax.op.clip(y, relax.prim_value(0.0), relax.prim_value(6.0)))
        return bb.emit(relax.op.quantize(y, _c(Y[0], "float32"), _c(Y[1], "int8"), axis=0))
    return body


def test_gemm_with_bias_and_relu6_becomes_int8_matmul_and_per_column_requantize():
    def expected(bb, qx, w):
        acc = bb.emit(relax.op.matmul(qx, w, out_dtype="int32"))
        # Bias and the input zero point's correction, one int32 per column.
        offset = BIAS - X[1] * W.astype(np.int64).sum(axis=0)
        acc = bb.emit(relax.op.add(acc, _c(offset, "int32")))
        real = np.float64(_f32(X[0])) * W_SCALE.astype(np.float64) / np.float64(_f32(Y[0]))
        # Clip(0, 6) folds into the bounds: quantize(0) = -5, quantize(6) = 60 - 5 = 55.
        return _requantize(bb, acc, real, Y[1], lo=-5, hi=55)

    before = _function(_float(W_SCALE))
    tvm.ir.assert_structural_equal(_lower(before), _function(expected))


def test_per_tensor_weights_without_bias_use_one_multiplier():
    def expected(bb, qx, w):
        acc = bb.emit(relax.op.matmul(qx, w, out_dtype="int32"))
        acc = bb.emit(relax.op.add(acc, _c(-X[1] * W.astype(np.int64).sum(axis=0), "int32")))
        real = np.float64(_f32(X[0])) * np.float64(_f32(0.02)) / np.float64(_f32(Y[0]))
        return _requantize(bb, acc, real, Y[1], lo=-128, hi=127)

    before = _function(_float(np.float32(0.02), bias=False, clip=False))
    tvm.ir.assert_structural_equal(_lower(before), _function(expected))


def test_per_channel_activation_params_are_left_alone():
    scales, zps = np.full(K, 0.05, np.float32), np.zeros(K, np.int8)

    def build():
        return _function(_float(W_SCALE, x_scale=scales, x_zp=zps), scales, zps)

    tvm.ir.assert_structural_equal(_lower(build()), build())


def test_non_constant_weights_are_left_alone():
    def build():
        return _function(_float(W_SCALE), weight_param=True)

    tvm.ir.assert_structural_equal(_lower(build()), build())
