"""LowerQuantizedElementwise: Before/Expected for int8 Add, Sub (one shared shift) and Mul."""

from __future__ import annotations

import numpy as np
import pytest
import tvm
from tvm import relax

from compiler import int8
from compiler.passes import LowerQuantizedElementwise
from tests.support.relax_helpers import const as _c
from tests.support.relax_helpers import f32 as _f32
from tests.support.relax_helpers import lowering

SHAPE = (1, 4, 3, 3)
A = (0.05, 3)  # (scale, zero point) of the left operand
B = (0.02, -7)  # of the right operand
Y = (0.08, -10)  # of the result


_lower = lowering(LowerQuantizedElementwise())


def _round_shift_clamp(bb, prod, n, zp, lo, hi):
    """The rounding tail of `_common.QuantRewriter.round_shift_clamp`, emitted by hand."""
    n = np.asarray(n, np.int64)
    odd = bb.emit(relax.op.bitwise_and(bb.emit(relax.op.right_shift(prod, _c(n, "int64"))),
                                       _c(1, "int64")))
    r = bb.emit(relax.op.add(bb.emit(relax.op.add(prod, _c((1 << (n - 1)) - 1, "int64"))), odd))
    r = bb.emit(relax.op.right_shift(r, _c(n, "int64")))
    if zp:
        r = bb.emit(relax.op.add(r, _c(zp, "int64")))
    r = bb.emit(relax.op.clip(r, relax.prim_value(lo), relax.prim_value(hi)))
    return bb.emit(relax.op.astype(r, "int8"))


def _minus_zp(bb, x, dtype, zp):
    x = bb.emit(relax.op.astype(x, dtype))
    return bb.emit(relax.op.subtract(x, _c(zp, dtype))) if zp else x


def _function(body, a_scale=A[0], a_zp=A[1]) -> tvm.IRModule:
    """``main(x, y)``: quantize both inputs, ``body(bb, qx, qy)``, dequantize the result."""
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(SHAPE, "float32"))
    y = relax.Var("y", relax.TensorType(SHAPE, "float32"))
    a_axis = 1 if np.ndim(a_scale) else 0
    with bb.function("main", [x, y]):
        with bb.dataflow():
            qx = bb.emit(relax.op.quantize(x, _c(a_scale, "float32"), _c(a_zp, "int8"),
                                           axis=a_axis))
            qy = bb.emit(relax.op.quantize(y, _c(B[0], "float32"), _c(B[1], "int8"), axis=0))
            yq = body(bb, qx, qy)
            out = bb.emit_output(relax.op.dequantize(yq, _c(Y[0], "float32"), _c(Y[1], "int8"),
                                                     axis=0))
        bb.emit_func_output(out)
    return bb.get()


def _float_body(op, relu=False, a_scale=A[0], a_zp=A[1]):
    def body(bb, qx, qy):
        a_axis = 1 if np.ndim(a_scale) else 0
        da = bb.emit(relax.op.dequantize(qx, _c(a_scale, "float32"), _c(a_zp, "int8"),
                                         axis=a_axis))
        db = bb.emit(relax.op.dequantize(qy, _c(B[0], "float32"), _c(B[1], "int8"), axis=0))
        r = bb.emit(op(da, db))
        if relu:
            r = bb.emit(relax.op.nn.relu(r))
        return bb.emit(relax.op.quantize(r, _c(Y[0], "float32"), _c(Y[1], "int8"), axis=0))
    return body


def _int_add_sub(op, qmin):
    """``p = M_a (a - zp_a) ± M_b (b - zp_b)`` in int64, one rounding by ``2^n``."""
    (m_a, m_b), n = int8.shared_shift_multipliers([_f32(A[0]) / _f32(Y[0]),
                                                   _f32(B[0]) / _f32(Y[0])])

    def body(bb, qx, qy):
        ta = bb.emit(relax.op.multiply(_minus_zp(bb, qx, "int64", A[1]), _c(m_a, "int64")))
        tb = bb.emit(relax.op.multiply(_minus_zp(bb, qy, "int64", B[1]), _c(m_b, "int64")))
        p = bb.emit(op(ta, tb))
        return _round_shift_clamp(bb, p, n, Y[1], qmin, 127)
    return body


def _int_mul(bb, qx, qy):
    """``acc = (a - zp_a)(b - zp_b)`` in int32, requantized by ``s_a s_b / s_y``."""
    acc = bb.emit(relax.op.multiply(_minus_zp(bb, qx, "int32", A[1]),
                                    _minus_zp(bb, qy, "int32", B[1])))
    mult, shift = int8.quantize_multiplier(np.float64(_f32(A[0])) * _f32(B[0]) / _f32(Y[0]))
    prod = bb.emit(relax.op.multiply(bb.emit(relax.op.astype(acc, "int64")),
                                     _c(mult.astype(np.int64), "int64")))
    return _round_shift_clamp(bb, prod, 31 - shift.astype(np.int64), Y[1], -128, 127)


def test_add_relu_uses_one_shared_shift_and_folds_relu_into_the_clamp():
    before = _function(_float_body(relax.op.add, relu=True))
    # ReLU after the add: the lower bound becomes the output zero point.
    expected = _function(_int_add_sub(relax.op.add, qmin=Y[1]))
    tvm.ir.assert_structural_equal(_lower(before), expected)


def test_sub_uses_one_shared_shift():
    before = _function(_float_body(relax.op.subtract))
    expected = _function(_int_add_sub(relax.op.subtract, qmin=-128))
    tvm.ir.assert_structural_equal(_lower(before), expected)


def test_mul_multiplies_in_int32_and_requantizes():
    before = _function(_float_body(relax.op.multiply))
    tvm.ir.assert_structural_equal(_lower(before), _function(_int_mul))


def test_shared_shift_multipliers_match_the_scale_ratios():
    (m_a, m_b), n = int8.shared_shift_multipliers([_f32(A[0]) / _f32(Y[0]),
                                                   _f32(B[0]) / _f32(Y[0])])
    assert 2**30 <= max(m_a, m_b) < 2**31
    assert m_a / 2.0**n == pytest.approx(A[0] / Y[0], rel=1e-6)
    assert m_b / 2.0**n == pytest.approx(B[0] / Y[0], rel=1e-6)


@pytest.mark.parametrize("op", [relax.op.add, relax.op.subtract, relax.op.multiply],
                         ids=["add", "sub", "mul"])
def test_per_channel_activation_params_are_left_alone(op):
    scales, zps = np.array([0.05, 0.04, 0.03, 0.02], np.float32), np.zeros(4, np.int8)

    def build():
        return _function(_float_body(op, a_scale=scales, a_zp=zps), a_scale=scales, a_zp=zps)

    tvm.ir.assert_structural_equal(_lower(build()), build())
