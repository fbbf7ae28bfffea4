"""LowerQuantizedConv2d: Before/Expected structure and numerics against onnxruntime."""

import numpy as np
import pytest
import tvm
from tvm import relax

from compiler import int8
from compiler.frontend import load_model
from compiler.passes import LowerQuantizedConv2d, lower_to_integer
from tests import qdq_models as qm
from tests.relax_helpers import const as _c

RNG = np.random.default_rng(0)
W = RNG.integers(-127, 128, (4, 4, 3, 3)).astype(np.int8)
W_SCALE = np.array([0.01, 0.02, 0.015, 0.03], np.float32)


def _before():
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, 4, 6, 6), "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            q = bb.emit(relax.op.quantize(x, _c(0.05, "float32"), _c(0, "int8"), axis=0))
            dq = bb.emit(relax.op.dequantize(q, _c(0.05, "float32"), _c(0, "int8"), axis=0))
            w = bb.emit(relax.op.dequantize(_c(W, "int8"), _c(W_SCALE, "float32"),
                                            _c(np.zeros(4), "int8"), axis=0))
            y = bb.emit(relax.op.nn.conv2d(dq, w, padding=(1, 1, 1, 1)))
            y = bb.emit(relax.op.nn.relu(y))
            yq = bb.emit(relax.op.quantize(y, _c(0.1, "float32"), _c(-128, "int8"), axis=0))
            out = bb.emit_output(relax.op.dequantize(yq, _c(0.1, "float32"), _c(-128, "int8"),
                                                     axis=0))
        bb.emit_func_output(out)
    return bb.get()


def _expected():
    mult, shift = int8.quantize_multiplier(0.05 * W_SCALE.astype(np.float64) / 0.1)
    n = (31 - shift.astype(np.int64)).reshape(1, 4, 1, 1)
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, 4, 6, 6), "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            q = bb.emit(relax.op.quantize(x, _c(0.05, "float32"), _c(0, "int8"), axis=0))
            acc = bb.emit(relax.op.nn.conv2d(q, _c(W, "int8"), padding=(1, 1, 1, 1),
                                             out_dtype="int32"))
            p = bb.emit(relax.op.multiply(bb.emit(relax.op.astype(acc, "int64")),
                                          _c(mult.astype(np.int64).reshape(1, 4, 1, 1), "int64")))
            odd = bb.emit(relax.op.bitwise_and(bb.emit(relax.op.right_shift(p, _c(n, "int64"))),
                                               _c(1, "int64")))
            r = bb.emit(relax.op.add(bb.emit(relax.op.add(p, _c((1 << (n - 1)) - 1, "int64"))),
                                     odd))
            r = bb.emit(relax.op.right_shift(r, _c(n, "int64")))
            r = bb.emit(relax.op.add(r, _c(-128, "int64")))
            r = bb.emit(relax.op.clip(r, relax.prim_value(-128), relax.prim_value(127)))
            yq = bb.emit(relax.op.astype(r, "int8"))
            out = bb.emit_output(relax.op.dequantize(yq, _c(0.1, "float32"), _c(-128, "int8"),
                                                     axis=0))
        bb.emit_func_output(out)
    return bb.get()


def test_conv_relu_becomes_int8_conv_and_fixed_point_requantize():
    after = relax.transform.CanonicalizeBindings()(LowerQuantizedConv2d()(_before()))
    tvm.ir.assert_structural_equal(after, _expected())


CASES = [
    dict(kernel=3, stride=1, padding=1),
    dict(kernel=3, stride=2, padding=1, act="none"),
    dict(kernel=3, stride=1, padding=2, dilation=2),
    dict(kernel=3, stride=1, padding=1, groups=8),  # depthwise
    dict(kernel=1, stride=1, padding=0, per_channel=False),
    dict(kernel=5, stride=2, padding=2, groups=2, bias=False),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "-".join(f"{k}{v}" for k, v in c.items()))
def test_int8_conv_is_bit_exact_against_onnxruntime(tmp_path, case):
    path = qm.brevitas_conv_model(tmp_path, **case)
    lowered = lower_to_integer(load_model(path))
    x = RNG.standard_normal(lowered.inputs[0].shape).astype(np.float32)
    ours = qm.run_relax(lowered.mod, int8.quantize(x, lowered.inputs[0].scale,
                                                   lowered.inputs[0].zero_point))
    out = lowered.outputs[0]
    exact, max_lsb = qm.int8_agreement(ours, qm.run_onnxruntime(path, x), out.scale,
                                       out.zero_point)
    assert exact >= 0.999 and max_lsb <= 1, (exact, max_lsb)
