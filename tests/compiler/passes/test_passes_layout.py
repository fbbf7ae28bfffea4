"""LowerQuantizedDataMovement: Before/Expected for reshape / permute / max-pool on int8 and
a plain requantize (dequantize → quantize with other parameters)."""

from __future__ import annotations

import numpy as np
import pytest
import tvm
from tvm import relax

from compiler import int8
from compiler.passes import LowerQuantizedDataMovement
from tests.support.relax_helpers import const as _c
from tests.support.relax_helpers import f32 as _f32
from tests.support.relax_helpers import lowering

SHAPE = (1, 4, 4, 4)
X = (0.05, 2)  # (scale, zero point) of the input
Z = (0.1, -3)  # another quantization, for the cases that must rescale


_lower = lowering(LowerQuantizedDataMovement())


def _function(body, out=X, x_scale=X[0], x_zp=X[1]) -> tvm.IRModule:
    """``main(x)``: quantize, ``body(bb, qx)``, dequantize with ``out``."""
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(SHAPE, "float32"))
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


def _float(op, out=X, x_scale=X[0], x_zp=X[1]):
    """``quantize(op(dequantize(qx)))``; ``op=None`` is a plain requantize."""
    def body(bb, qx):
        axis = 1 if np.ndim(x_scale) else 0
        y = bb.emit(relax.op.dequantize(qx, _c(x_scale, "float32"), _c(x_zp, "int8"), axis=axis))
        if op is not None:
            y = bb.emit(op(y))
        return bb.emit(relax.op.quantize(y, _c(out[0], "float32"), _c(out[1], "int8"), axis=0))
    return body


def _rescale_x_to_z(bb, q):
    """`_common.QuantRewriter.rescale` from X to Z, emitted by hand."""
    acc = bb.emit(relax.op.subtract(bb.emit(relax.op.astype(q, "int32")), _c(X[1], "int32")))
    mult, shift = int8.quantize_multiplier(_f32(X[0]) / _f32(Z[0]))
    n = 31 - shift.astype(np.int64)
    p = bb.emit(relax.op.multiply(bb.emit(relax.op.astype(acc, "int64")),
                                  _c(mult.astype(np.int64), "int64")))
    odd = bb.emit(relax.op.bitwise_and(bb.emit(relax.op.right_shift(p, _c(n, "int64"))),
                                       _c(1, "int64")))
    r = bb.emit(relax.op.add(bb.emit(relax.op.add(p, _c((1 << (n - 1)) - 1, "int64"))), odd))
    r = bb.emit(relax.op.right_shift(r, _c(n, "int64")))
    r = bb.emit(relax.op.add(r, _c(Z[1], "int64")))
    r = bb.emit(relax.op.clip(r, relax.prim_value(-128), relax.prim_value(127)))
    return bb.emit(relax.op.astype(r, "int8"))


def _reshape(x):
    return relax.op.reshape(x, (1, 64))


def _permute(x):
    return relax.op.permute_dims(x, [0, 2, 3, 1])


def _max_pool(x):
    return relax.op.nn.max_pool2d(x, (3, 3), strides=(2, 2), padding=(1, 1))


@pytest.mark.parametrize("op", [_reshape, _permute, _max_pool], ids=["reshape", "permute",
                                                                     "max_pool"])
def test_same_quantization_moves_the_int8_tensor_directly(op):
    expected = _function(lambda bb, qx: bb.emit(op(qx)))
    tvm.ir.assert_structural_equal(_lower(_function(_float(op))), expected)


def test_permute_to_another_quantization_rescales_after_moving():
    expected = _function(lambda bb, qx: _rescale_x_to_z(bb, bb.emit(_permute(qx))), out=Z)
    tvm.ir.assert_structural_equal(_lower(_function(_float(_permute, Z), out=Z)), expected)


def test_plain_requantize_becomes_a_fixed_point_rescale():
    expected = _function(_rescale_x_to_z, out=Z)
    tvm.ir.assert_structural_equal(_lower(_function(_float(None, Z), out=Z)), expected)


@pytest.mark.parametrize("op", [None, _reshape, _permute, _max_pool],
                         ids=["requantize", "reshape", "permute", "max_pool"])
def test_per_channel_input_params_are_left_alone(op):
    scales, zps = np.array([0.05, 0.04, 0.03, 0.02], np.float32), np.zeros(4, np.int8)

    def build():
        return _function(_float(op, X, scales, zps), X, scales, zps)

    tvm.ir.assert_structural_equal(_lower(build()), build())


def test_ceil_mode_max_pool_is_left_alone():
    def op(x):
        return relax.op.nn.max_pool2d(x, (3, 3), strides=(2, 2), ceil_mode=True)

    tvm.ir.assert_structural_equal(_lower(_function(_float(op))), _function(_float(op)))


def test_nhwc_max_pool_keeps_its_layout():
    def op(x):
        return relax.op.nn.max_pool2d(x, (2, 2), strides=(2, 2), layout="NHWC")

    lowered = _lower(_function(_float(op)))
    assert tuple(int(d) for d in lowered["main"].ret_ty.shape) == (1, 2, 2, 4)
