"""FoldIntegerClamp: Before/Expected for an int8 clip folded into a requantize or a table.

The Before functions are what the lowering passes leave for Brevitas' QCDQ export
(``QuantizeLinear → Clip → DequantizeLinear``): an int8 ``clip`` on the result of a
requantize (``astype(clip(v, a, b), int8)``) or of a table lookup (``take(T, i)``).
"""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax

from compiler.passes import FoldIntegerClamp
from tests.support.relax_helpers import const as _c

SHAPE = (1, 8)
TABLE = np.arange(-128, 128).astype(np.int8)


def _clip(x, lo, hi):
    return relax.op.clip(x, relax.prim_value(lo), relax.prim_value(hi))


def _function(body, dtype) -> tvm.IRModule:
    """``main(v)`` with ``v`` of ``dtype``: ``body(bb, v)`` then dequantize the int8 result."""
    bb = relax.BlockBuilder()
    v = relax.Var("v", relax.TensorType(SHAPE, dtype))
    with bb.function("main", [v]):
        with bb.dataflow():
            q = body(bb, v)
            out = bb.emit_output(relax.op.dequantize(q, _c(0.1, "float32"), _c(0, "int8"),
                                                     axis=0))
        bb.emit_func_output(out)
    return bb.get()


def test_clip_after_requantize_narrows_the_requantize_bounds():
    def before(bb, acc):
        q = bb.emit(relax.op.astype(bb.emit(_clip(acc, -128, 127)), "int8"))
        return bb.emit(_clip(q, -7, 7))  # a 4-bit narrow-range activation

    def expected(bb, acc):
        return bb.emit(relax.op.astype(bb.emit(_clip(acc, -7, 7)), "int8"))

    after = FoldIntegerClamp()(_function(before, "int64"))
    tvm.ir.assert_structural_equal(after, _function(expected, "int64"))


def test_bounds_intersect_with_a_relu_already_folded():
    def before(bb, acc):
        q = bb.emit(relax.op.astype(bb.emit(_clip(acc, 0, 127)), "int8"))
        return bb.emit(_clip(q, -8, 7))

    def expected(bb, acc):
        return bb.emit(relax.op.astype(bb.emit(_clip(acc, 0, 7)), "int8"))

    after = FoldIntegerClamp()(_function(before, "int64"))
    tvm.ir.assert_structural_equal(after, _function(expected, "int64"))


def test_clip_after_table_lookup_is_folded_into_the_table():
    def before(bb, index):
        return bb.emit(_clip(bb.emit(relax.op.take(_c(TABLE, "int8"), index, axis=0)), -8, 7))

    def expected(bb, index):
        return bb.emit(relax.op.take(_c(np.clip(TABLE, -8, 7), "int8"), index, axis=0))

    after = FoldIntegerClamp()(_function(before, "int32"))
    tvm.ir.assert_structural_equal(after, _function(expected, "int32"))


def test_clip_of_another_int8_value_is_left_alone():
    def body(bb, q):
        return bb.emit(_clip(bb.emit(relax.op.negative(q)), -7, 7))

    tvm.ir.assert_structural_equal(FoldIntegerClamp()(_function(body, "int8")),
                                   _function(body, "int8"))


def test_clip_of_an_astype_without_requantize_is_left_alone():
    def body(bb, v):
        return bb.emit(_clip(bb.emit(relax.op.astype(v, "int8")), -7, 7))

    tvm.ir.assert_structural_equal(FoldIntegerClamp()(_function(body, "int32")),
                                   _function(body, "int32"))
