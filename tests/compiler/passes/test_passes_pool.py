"""LowerQuantizedAvgPool: Before/Expected for avg-pool (a depthwise conv with ones) and mean."""

from __future__ import annotations

import numpy as np
import pytest
import tvm
from tvm import relax

from compiler import int8
from compiler.passes import LowerQuantizedAvgPool
from compiler.passes._common import padded_conv2d
from compiler.passes.resize_kernels import emit_kernel
from tests.support.relax_helpers import const as _c
from tests.support.relax_helpers import f32 as _f32
from tests.support.relax_helpers import lowering

C = 3
X = (0.05, 3)  # (scale, zero point) of the input
Y = (0.04, -2)  # of the output


_lower = lowering(LowerQuantizedAvgPool())


def _requantize(bb, acc, real, zp, bshape=None):
    """`_common.QuantRewriter.requantize` emitted by hand (int32 → int8, rounding half even)."""
    mult, shift = int8.quantize_multiplier(np.asarray(real, np.float64))
    m, n = mult.astype(np.int64), 31 - shift.astype(np.int64)
    if bshape is not None:
        m, n = m.reshape(bshape), n.reshape(bshape)
    p = bb.emit(relax.op.multiply(bb.emit(relax.op.astype(acc, "int64")), _c(m, "int64")))
    odd = bb.emit(relax.op.bitwise_and(bb.emit(relax.op.right_shift(p, _c(n, "int64"))),
                                       _c(1, "int64")))
    r = bb.emit(relax.op.add(bb.emit(relax.op.add(p, _c((1 << (n - 1)) - 1, "int64"))), odd))
    r = bb.emit(relax.op.right_shift(r, _c(n, "int64")))
    r = bb.emit(relax.op.add(r, _c(zp, "int64")))
    r = bb.emit(relax.op.clip(r, relax.prim_value(-128), relax.prim_value(127)))
    return bb.emit(relax.op.astype(r, "int8"))


def _function(body, x_scale=X[0], x_zp=X[1]) -> tvm.IRModule:
    """``main(x)``: quantize, ``body(bb, qx)``, dequantize the result."""
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, C, 6, 6), "float32"))
    axis = 1 if np.ndim(x_scale) else 0
    with bb.function("main", [x]):
        with bb.dataflow():
            qx = bb.emit(relax.op.quantize(x, _c(x_scale, "float32"), _c(x_zp, "int8"),
                                           axis=axis))
            yq = body(bb, qx)
            out = bb.emit_output(relax.op.dequantize(yq, _c(Y[0], "float32"), _c(Y[1], "int8"),
                                                     axis=0))
        bb.emit_func_output(out)
    return bb.get()


def _float(pool, x_scale=X[0], x_zp=X[1]):
    def body(bb, qx):
        axis = 1 if np.ndim(x_scale) else 0
        dx = bb.emit(relax.op.dequantize(qx, _c(x_scale, "float32"), _c(x_zp, "int8"),
                                         axis=axis))
        y = bb.emit(pool(dx))
        return bb.emit(relax.op.quantize(y, _c(Y[0], "float32"), _c(Y[1], "int8"), axis=0))
    return body


def _avg_pool(count_include_pad):
    return lambda x: relax.op.nn.avg_pool2d(x, (3, 3), strides=(2, 2), padding=(1, 1),
                                            count_include_pad=count_include_pad)


def _global_mean(x):
    return relax.op.mean(x, axis=[2, 3], keepdims=True)


def _window_sums(bb, qx):
    """Sum each 3x3 window with a ones kernel reading the zero point outside, remove ``zp · 9``.

    The padding is a stage of the conv's own kernel (one ``call_tir``), not an ``R.nn.pad``.
    """
    tag = {"op": "conv2d", "strides": [2, 2], "padding": [1, 1, 1, 1], "dilation": [1, 1],
           "groups": C, "pad_value": X[1]}
    acc = emit_kernel(bb, padded_conv2d, qx, _c(np.ones((C, 1, 3, 3)), "int8"), [2, 2],
                      [1, 1, 1, 1], [1, 1], C, X[1], name="conv2d", tag=tag)
    return bb.emit(relax.op.subtract(acc, _c(X[1] * 9, "int32")))


def test_avg_pool_is_a_ones_depthwise_conv_with_the_count_in_the_multiplier():
    def expected(bb, qx):
        return _requantize(bb, _window_sums(bb, qx),
                           np.float64(_f32(X[0])) / (_f32(Y[0]) * 9), Y[1])

    before = _function(_float(_avg_pool(count_include_pad=True)))
    tvm.ir.assert_structural_equal(_lower(before), _function(expected))


def test_avg_pool_without_padded_elements_divides_by_each_windows_count():
    # 6x6 input, 3x3 window, stride 2, pad 1: output rows/cols 0 see 2 valid rows/cols, others 3.
    valid = np.array([2, 3, 3])
    counts = np.outer(valid, valid).reshape(1, 1, 3, 3)

    def expected(bb, qx):
        real = np.float64(_f32(X[0])) / (np.float64(_f32(Y[0])) * counts)
        return _requantize(bb, _window_sums(bb, qx), real, Y[1], bshape=(1, 1, 3, 3))

    before = _function(_float(_avg_pool(count_include_pad=False)))
    tvm.ir.assert_structural_equal(_lower(before), _function(expected))


def test_avg_pool_with_a_zero_zero_point_pads_in_the_plain_conv():
    def expected(bb, qx):
        acc = bb.emit(relax.op.nn.conv2d(qx, _c(np.ones((C, 1, 3, 3)), "int8"), strides=(2, 2),
                                         padding=(1, 1, 1, 1), groups=C, out_dtype="int32"))
        return _requantize(bb, acc, np.float64(_f32(X[0])) / (_f32(Y[0]) * 9), Y[1])

    before = _function(_float(_avg_pool(count_include_pad=True), X[0], 0), X[0], 0)
    tvm.ir.assert_structural_equal(_lower(before), _function(expected, X[0], 0))


def test_global_avg_pool_sums_over_hw_and_divides_in_the_multiplier():
    def expected(bb, qx):
        acc = bb.emit(relax.op.sum(bb.emit(relax.op.astype(qx, "int32")), axis=[2, 3],
                                   keepdims=True))
        acc = bb.emit(relax.op.subtract(acc, _c(X[1] * 36, "int32")))
        return _requantize(bb, acc, np.float64(_f32(X[0])) / (_f32(Y[0]) * 36), Y[1])

    before = _function(_float(_global_mean))
    tvm.ir.assert_structural_equal(_lower(before), _function(expected))


@pytest.mark.parametrize("pool", [_avg_pool(True), _global_mean], ids=["avg_pool", "mean"])
def test_per_channel_input_params_are_left_alone(pool):
    scales, zps = np.array([0.05, 0.04, 0.03], np.float32), np.zeros(C, np.int8)

    def build():
        return _function(_float(pool, scales, zps), scales, zps)

    tvm.ir.assert_structural_equal(_lower(build()), build())


def test_mean_over_channels_is_left_alone():
    def build():
        return _function(_float(lambda x: relax.op.mean(x, axis=[1], keepdims=True)))

    tvm.ir.assert_structural_equal(_lower(build()), build())
