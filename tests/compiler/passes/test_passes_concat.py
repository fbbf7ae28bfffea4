"""LowerQuantizedConcat: Before/Expected for an int8 concat with one input rescaled."""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax

from compiler import int8
from compiler.passes import LowerQuantizedConcat
from tests.support.relax_helpers import const as _c
from tests.support.relax_helpers import f32 as _f32
from tests.support.relax_helpers import lowering

OUT = (0.05, 0)  # (scale, zero point) of the concat output, shared with the first input
OTHER = (0.08, 5)  # the second input's own quantization


_lower = lowering(LowerQuantizedConcat())


def _function(body, other_scale=OTHER[0], other_zp=OTHER[1]) -> tvm.IRModule:
    """``main(a, b)``: quantize both inputs, ``body(bb, qa, qb)``, dequantize the result."""
    bb = relax.BlockBuilder()
    a = relax.Var("a", relax.TensorType((1, 2, 4, 4), "float32"))
    b = relax.Var("b", relax.TensorType((1, 3, 4, 4), "float32"))
    b_axis = 1 if np.ndim(other_scale) else 0
    with bb.function("main", [a, b]):
        with bb.dataflow():
            qa = bb.emit(relax.op.quantize(a, _c(OUT[0], "float32"), _c(OUT[1], "int8"), axis=0))
            qb = bb.emit(relax.op.quantize(b, _c(other_scale, "float32"), _c(other_zp, "int8"),
                                           axis=b_axis))
            yq = body(bb, qa, qb)
            out = bb.emit_output(relax.op.dequantize(yq, _c(OUT[0], "float32"),
                                                     _c(OUT[1], "int8"), axis=0))
        bb.emit_func_output(out)
    return bb.get()


def _float_concat(other_scale=OTHER[0], other_zp=OTHER[1]):
    def body(bb, qa, qb):
        b_axis = 1 if np.ndim(other_scale) else 0
        da = bb.emit(relax.op.dequantize(qa, _c(OUT[0], "float32"), _c(OUT[1], "int8"), axis=0))
        db = bb.emit(relax.op.dequantize(qb, _c(other_scale, "float32"), _c(other_zp, "int8"),
                                         axis=b_axis))
        y = bb.emit(relax.op.concat([da, db], axis=1))
        return bb.emit(relax.op.quantize(y, _c(OUT[0], "float32"), _c(OUT[1], "int8"), axis=0))
    return body


def _int_concat(bb, qa, qb):
    """``qa`` already has the output's quantization; ``qb`` is requantized to it first."""
    acc = bb.emit(relax.op.subtract(bb.emit(relax.op.astype(qb, "int32")), _c(OTHER[1], "int32")))
    mult, shift = int8.quantize_multiplier(_f32(OTHER[0]) / _f32(OUT[0]))
    n = 31 - shift.astype(np.int64)
    p = bb.emit(relax.op.multiply(bb.emit(relax.op.astype(acc, "int64")),
                                  _c(mult.astype(np.int64), "int64")))
    odd = bb.emit(relax.op.bitwise_and(bb.emit(relax.op.right_shift(p, _c(n, "int64"))),
                                       _c(1, "int64")))
    r = bb.emit(relax.op.add(bb.emit(relax.op.add(p, _c((1 << (n - 1)) - 1, "int64"))), odd))
    r = bb.emit(relax.op.right_shift(r, _c(n, "int64")))
    # OUT's zero point is 0: no "+ zp" step.
    r = bb.emit(relax.op.clip(r, relax.prim_value(-128), relax.prim_value(127)))
    rb = bb.emit(relax.op.astype(r, "int8"))
    return bb.emit(relax.op.concat([qa, rb], axis=1))


def test_input_with_another_scale_is_rescaled_before_the_int8_concat():
    tvm.ir.assert_structural_equal(_lower(_function(_float_concat())), _function(_int_concat))


def test_inputs_sharing_the_output_quantization_concat_directly():
    before = _function(_float_concat(*OUT), *OUT)
    expected = _function(lambda bb, qa, qb: bb.emit(relax.op.concat([qa, qb], axis=1)), *OUT)
    tvm.ir.assert_structural_equal(_lower(before), expected)


def test_per_channel_input_params_are_left_alone():
    scales, zps = np.array([0.08, 0.04, 0.02], np.float32), np.zeros(3, np.int8)

    def build():
        return _function(_float_concat(scales, zps), scales, zps)

    tvm.ir.assert_structural_equal(_lower(build()), build())
