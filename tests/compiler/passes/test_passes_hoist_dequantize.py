"""HoistDequantize: Before/Expected on a concat of equally quantized tensors."""

from __future__ import annotations

import numpy as np
import tvm
from tvm import relax

from compiler.passes import HoistDequantize


def _scalar(value, dtype):
    return relax.const(np.array(value, dtype=dtype), dtype)


def _function(hoisted: bool, scales=(0.5, 0.5)) -> tvm.IRModule:
    bb = relax.BlockBuilder()
    a = relax.Var("a", relax.TensorType((1, 2, 4, 4), "int8"))
    b = relax.Var("b", relax.TensorType((1, 3, 4, 4), "int8"))
    with bb.function("main", [a, b]):
        with bb.dataflow():
            if hoisted:
                joined = bb.emit(relax.op.concat([a, b], axis=1))
                out = bb.emit(relax.op.dequantize(joined, _scalar(scales[0], "float32"),
                                                  _scalar(3, "int8"), axis=1))
            else:
                fa = bb.emit(relax.op.dequantize(a, _scalar(scales[0], "float32"),
                                                 _scalar(3, "int8"), axis=1))
                fb = bb.emit(relax.op.dequantize(b, _scalar(scales[1], "float32"),
                                                 _scalar(3, "int8"), axis=1))
                out = bb.emit(relax.op.concat([fa, fb], axis=1))
            result = bb.emit_output(out)
        bb.emit_func_output(result)
    return bb.get()


def test_shared_dequantize_moves_after_concat():
    after = HoistDequantize()(_function(hoisted=False))
    tvm.ir.assert_structural_equal(after["main"], _function(hoisted=True)["main"])


def test_different_scales_are_left_alone():
    after = HoistDequantize()(_function(hoisted=False, scales=(0.5, 0.25)))
    tvm.ir.assert_structural_equal(after["main"],
                                   _function(hoisted=False, scales=(0.5, 0.25))["main"])


def test_the_input_module_is_not_modified():
    before = _function(hoisted=False)
    HoistDequantize()(before)
    tvm.ir.assert_structural_equal(before["main"], _function(hoisted=False)["main"])
