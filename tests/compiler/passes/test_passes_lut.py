"""LowerQuantizedUnaryToLUT: Before/Expected for sigmoid and hard-swish as 256-entry tables."""

from __future__ import annotations

import numpy as np
import pytest
import tvm
from tvm import relax

from compiler import int8
from compiler.passes import LowerQuantizedUnaryToLUT
from tests.support.relax_helpers import const as _c
from tests.support.relax_helpers import lowering

SHAPE = (1, 4, 3, 3)
X = (0.05, 3)  # (scale, zero point) of the input
Y = (1 / 256, -128)  # of the output
F32 = np.float32


_lower = lowering(LowerQuantizedUnaryToLUT())


def _sigmoid(bb, x):
    return bb.emit(relax.op.sigmoid(x))


def _hardswish(bb, x):
    """The ONNX frontend's HardSwish: ``x · clip(x + 3, 0, 6) / 6``."""
    t = bb.emit(relax.op.add(x, _c(3, "float32")))
    t = bb.emit(relax.op.clip(t, 0, 6))
    t = bb.emit(relax.op.divide(t, _c(6, "float32")))
    return bb.emit(relax.op.multiply(x, t))


def _table(f) -> np.ndarray:
    """``T[i] = quantize(f(dequantize(i - 128)))`` evaluated in float32 like the float graph."""
    x = int8.dequantize(np.arange(-128, 128), X[0], X[1])
    with np.errstate(all="ignore"):
        return int8.quantize(f(x).astype(F32), Y[0], Y[1])


TABLES = {
    "sigmoid": (_sigmoid, lambda x: F32(1) / (F32(1) + np.exp(-x))),
    "hardswish": (_hardswish, lambda x: x * (np.clip(x + F32(3), F32(0), F32(6)) / F32(6))),
}


def _function(body, x_scale=X[0], x_zp=X[1], inputs=1) -> tvm.IRModule:
    """``main(x, ...)``: quantize each input, ``body(bb, *q)``, dequantize the result."""
    bb = relax.BlockBuilder()
    xs = [relax.Var(f"x{i}", relax.TensorType(SHAPE, "float32")) for i in range(inputs)]
    axis = 1 if np.ndim(x_scale) else 0
    with bb.function("main", xs):
        with bb.dataflow():
            qs = [bb.emit(relax.op.quantize(x, _c(x_scale, "float32"), _c(x_zp, "int8"),
                                            axis=axis)) for x in xs]
            yq = body(bb, *qs)
            out = bb.emit_output(relax.op.dequantize(yq, _c(Y[0], "float32"), _c(Y[1], "int8"),
                                                     axis=0))
        bb.emit_func_output(out)
    return bb.get()


def _float(f, x_scale=X[0], x_zp=X[1]):
    def body(bb, *qs):
        axis = 1 if np.ndim(x_scale) else 0
        xs = [bb.emit(relax.op.dequantize(q, _c(x_scale, "float32"), _c(x_zp, "int8"),
                                          axis=axis)) for q in qs]
        y = f(bb, *xs)
        return bb.emit(relax.op.quantize(y, _c(Y[0], "float32"), _c(Y[1], "int8"), axis=0))
    return body


@pytest.mark.parametrize("name", list(TABLES))
def test_activation_becomes_a_256_entry_table_lookup(name):
    build, reference = TABLES[name]

    def expected(bb, qx):
        index = bb.emit(relax.op.add(bb.emit(relax.op.astype(qx, "int32")), _c(128, "int32")))
        return bb.emit(relax.op.take(_c(_table(reference), "int8"), index, axis=0))

    tvm.ir.assert_structural_equal(_lower(_function(_float(build))), _function(expected))


def test_sigmoid_table_is_monotonic_and_spans_the_output_range():
    table = _table(TABLES["sigmoid"][1])
    assert table.shape == (256,) and np.all(np.diff(table.astype(int)) >= 0)
    assert table[0] == -128  # sigmoid(-131 · 0.05) · 256 = 0.37 → 0, plus zp
    assert table[-1] == 127  # sigmoid(124 · 0.05) · 256 = 255.48 → 255, plus zp


@pytest.mark.parametrize("name", list(TABLES))
def test_per_channel_input_params_are_left_alone(name):
    scales, zps = np.array([0.05, 0.04, 0.03, 0.02], np.float32), np.zeros(4, np.int8)

    def build():
        return _function(_float(TABLES[name][0], scales, zps), scales, zps)

    tvm.ir.assert_structural_equal(_lower(build()), build())


def test_function_of_two_int8_tensors_is_left_alone():
    def f(bb, a, b):
        return bb.emit(relax.op.sigmoid(bb.emit(relax.op.add(a, b))))

    def build():
        return _function(_float(f), inputs=2)

    tvm.ir.assert_structural_equal(_lower(build()), build())
