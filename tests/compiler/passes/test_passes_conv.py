"""LowerQuantizedConv2d: Before/Expected structure and numerics against onnxruntime."""

import numpy as np
import pytest
import tvm
from tvm import relax

from compiler import int8
from compiler.frontend import load_model
from compiler.passes import LowerQuantizedConv2d, lower_to_integer
from compiler.passes._common import padded_conv2d
from compiler.passes.resize_kernels import emit_kernel
from tests.support import qdq_models as qm
from tests.support.relax_helpers import const as _c

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


# ---- zero-point padding folded into the conv's own kernel ------------------------------------
ZP = -128  # an unsigned activation (after ReLU) canonicalised to int8


def _before_zp():
    """`_before` with the input's zero point at −128 (a ReLU output)."""
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, 4, 6, 6), "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            q = bb.emit(relax.op.quantize(x, _c(0.05, "float32"), _c(ZP, "int8"), axis=0))
            dq = bb.emit(relax.op.dequantize(q, _c(0.05, "float32"), _c(ZP, "int8"), axis=0))
            w = bb.emit(relax.op.dequantize(_c(W, "int8"), _c(W_SCALE, "float32"),
                                            _c(np.zeros(4), "int8"), axis=0))
            y = bb.emit(relax.op.nn.conv2d(dq, w, padding=(1, 1, 1, 1)))
            yq = bb.emit(relax.op.quantize(y, _c(0.1, "float32"), _c(-128, "int8"), axis=0))
            out = bb.emit_output(relax.op.dequantize(yq, _c(0.1, "float32"), _c(-128, "int8"),
                                                     axis=0))
        bb.emit_func_output(out)
    return bb.get()


def _expected_zp():
    """One tagged ``call_tir`` reading the zero point at the border; no ``R.nn.pad``."""
    mult, shift = int8.quantize_multiplier(0.05 * W_SCALE.astype(np.float64) / 0.1)
    n = (31 - shift.astype(np.int64)).reshape(1, 4, 1, 1)
    offset = (-ZP * W.astype(np.int64).reshape(4, -1).sum(axis=1)).astype(np.int32)
    tag = {"op": "conv2d", "strides": [1, 1], "padding": [1, 1, 1, 1], "dilation": [1, 1],
           "groups": 1, "pad_value": ZP}
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType((1, 4, 6, 6), "float32"))
    with bb.function("main", [x]):
        with bb.dataflow():
            q = bb.emit(relax.op.quantize(x, _c(0.05, "float32"), _c(ZP, "int8"), axis=0))
            acc = emit_kernel(bb, padded_conv2d, q, _c(W, "int8"), [1, 1], [1, 1, 1, 1], [1, 1],
                              1, ZP, name="conv2d", tag=tag)
            acc = bb.emit(relax.op.add(acc, _c(offset.reshape(1, 4, 1, 1), "int32")))
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


def test_nonzero_zero_point_padding_is_read_by_the_conv_kernel_not_a_pad():
    after = relax.transform.CanonicalizeBindings()(LowerQuantizedConv2d()(_before_zp()))
    tvm.ir.assert_structural_equal(after, _expected_zp())


def test_lowering_leaves_its_input_module_untouched():
    before = _before_zp()
    copy = before.clone()
    LowerQuantizedConv2d()(before)
    tvm.ir.assert_structural_equal(before, copy)


PADDED = [  # (in_ch, out_ch, kernel, strides, padding (t, l, b, r), dilation, groups)
    (4, 6, 3, (1, 1), (1, 1, 1, 1), (1, 1), 1),
    (4, 4, 3, (2, 2), (1, 1, 1, 1), (1, 1), 4),  # stride-2 depthwise
    (6, 6, 3, (1, 1), (2, 2, 2, 2), (2, 2), 6),  # dilated depthwise
    (4, 6, 3, (2, 1), (0, 1, 2, 1), (1, 2), 2),  # grouped, asymmetric pads and strides
    (3, 4, 5, (2, 2), (2, 1, 1, 2), (1, 1), 1),
]


@pytest.mark.parametrize("case", PADDED, ids=lambda c: "c{}o{}k{}s{}p{}d{}g{}".format(*c))
def test_padded_conv_kernel_equals_zero_point_shifted_reference(case):
    """``conv(pad(x, zp), w) = conv_ref(x - zp, w) + zp · Σ w``: NumPy reference, no TVM."""
    from compiler.reference import kernels

    cin, cout, k, strides, pads, dil, groups = case
    rng = np.random.default_rng(1)
    x = rng.integers(-128, 128, (1, cin, 9, 8)).astype(np.int8)
    w = rng.integers(-127, 128, (cout, cin // groups, k, k)).astype(np.int8)
    bb = relax.BlockBuilder()
    xv = relax.Var("x", relax.TensorType(x.shape, "int8"))
    with bb.function("main", [xv]):
        with bb.dataflow():
            acc = bb.emit_output(bb.emit_te(padded_conv2d, xv, _c(w, "int8"), strides, pads,
                                            dil, groups, ZP))
        bb.emit_func_output(acc)
    ours = qm.run_relax(bb.get(), x)
    ref = kernels.conv2d(x.astype(np.int64) - ZP, w, strides, pads, dil, groups)
    ref += ZP * w.astype(np.int64).reshape(cout, -1).sum(axis=1).reshape(1, cout, 1, 1)
    np.testing.assert_array_equal(ours, ref)
