"""LowerQuantizedResize: one int8-in, int8-out kernel per quantized resize, exact per ONNX.

The gather indices and integer weights below are worked out by hand from the ONNX
half-pixel rule ``src = (o + 1/2) / scale - 1/2`` for a 2× upsample (3 → 6 rows,
2 → 4 columns), so the tests pin the exact tables the pass computes. The kernels are
then run on TVM's VM and compared bit for bit with the NumPy reference's separable
integer form (`compiler.reference.kernels`), over every coordinate mode and rounding
and over up- and downsampling scales that are not integers.
"""

from __future__ import annotations

import json
from fractions import Fraction

import numpy as np
import pytest
import tvm
from tvm import relax

from compiler import int8
from compiler.passes import LowerQuantizedResize
from compiler.passes.resize_kernels import kernel_tag
from compiler.passes.resize_spec import COORDINATE_MODES, NEAREST_MODES, ResizeSpec
from compiler.reference import kernels as ref
from tests.support.qdq_models import run_relax
from tests.support.relax_helpers import const as _c
from tests.support.relax_helpers import f32 as _f32
from tests.support.relax_helpers import lowering

X = (0.05, 1)  # (scale, zero point) of the input
Y = (0.03, -4)  # of the bilinear output (nearest keeps X)
SHAPE = (1, 2, 3, 2)

# Nearest, round_prefer_floor: src rows -0.25, 0.25, 0.75, 1.25, 1.75, 2.25 → 0 0 1 1 2 2.
NEAREST_ROWS = [0, 0, 1, 1, 2, 2]
NEAREST_COLS = [0, 0, 1, 1]
# Bilinear: src clamped to [0, n_in - 1]; weights are quarters (common denominator D = 4).
ROWS = [[0, 0, 0, 1, 1, 2], [1, 1, 1, 2, 2, 2], [4, 3, 1, 3, 1, 4], [0, 1, 3, 1, 3, 0]]
COLS = [[0, 0, 0, 1], [1, 1, 1, 1], [4, 3, 1, 4], [0, 1, 3, 0]]

_lower = lowering(LowerQuantizedResize())


def _module(method: str, out=X, x_params=X, size=(6, 4), in_shape=SHAPE,
            mode="half_pixel", rounding="round_prefer_floor") -> tvm.IRModule:
    """``main(x)``: quantize, dequantize, resize2d, quantize, dequantize."""
    bb = relax.BlockBuilder()
    x = relax.Var("x", relax.TensorType(in_shape, "float32"))
    axis = 1 if np.ndim(x_params[0]) else 0
    with bb.function("main", [x]):
        with bb.dataflow():
            qx = bb.emit(relax.op.quantize(x, _c(x_params[0], "float32"),
                                           _c(x_params[1], "int8"), axis=axis))
            dx = bb.emit(relax.op.dequantize(qx, _c(x_params[0], "float32"),
                                             _c(x_params[1], "int8"), axis=axis))
            y = bb.emit(relax.op.image.resize2d(dx, size, method=method,
                                                coordinate_transformation_mode=mode,
                                                rounding_method=rounding))
            yq = bb.emit(relax.op.quantize(y, _c(out[0], "float32"), _c(out[1], "int8"), axis=0))
            res = bb.emit_output(relax.op.dequantize(yq, _c(out[0], "float32"),
                                                     _c(out[1], "int8"), axis=0))
        bb.emit_func_output(res)
    return bb.get()


def _kernel_call(mod: tvm.IRModule) -> relax.Call:
    calls = [b.value for block in mod["main"].body.blocks for b in block.bindings
             if isinstance(b.value, relax.Call) and b.value.op.name == "relax.call_tir"]
    assert len(calls) == 1, mod
    return calls[0]


def _tables(call: relax.Call) -> list[np.ndarray]:
    return [a.value.numpy() for a in call.args[1].fields[1:]]


def test_nearest_is_one_int8_gather_kernel_with_the_onnx_indices():
    lowered = _lower(_module("nearest_neighbor"))
    call = _kernel_call(lowered)
    rows, cols = _tables(call)
    assert rows.tolist() == NEAREST_ROWS and cols.tolist() == NEAREST_COLS
    assert str(call.ty.dtype) == "int8" and str(call.args[1].fields[0].ty.dtype) == "int8"
    tag = kernel_tag(lowered, call)
    assert tag["op"] == "resize_int8" and tag["real"] is None  # same quantization: a gather


def test_bilinear_is_one_kernel_with_quarter_weights_and_a_per_element_requantize():
    lowered = _lower(_module("linear", out=Y))
    call = _kernel_call(lowered)
    rows, cols = _tables(call)
    assert rows.tolist() == ROWS and cols.tolist() == COLS
    tag = kernel_tag(lowered, call)
    assert tag["denom"] == 16 and tag["x_zp"] == X[1] and tag["out_zp"] == Y[1]
    assert float.fromhex(tag["real"]) == np.float64(_f32(X[0])) / (np.float64(_f32(Y[0])) * 16)
    # No tensor wider than int8 is left in main: the accumulator is per element.
    dtypes = {str(b.var.ty.dtype) for block in lowered["main"].body.blocks
              for b in block.bindings if isinstance(b.var.ty, relax.TensorType)}
    assert dtypes <= {"int8", "float32"}, dtypes


def _reference(method, q, spec: ResizeSpec, x_params, out, rounding, mode):
    """The NumPy reference's int8 result (independent tables, separable form)."""
    (h, w), (ho, wo) = spec.in_hw, spec.out_hw
    sh, sw = spec.scales
    if method == "nearest_neighbor":
        rows = ref.nearest_indices(h, ho, mode, rounding, sh)
        cols = ref.nearest_indices(w, wo, mode, rounding, sw)
        y = q[:, :, rows][:, :, :, cols].astype(np.int64) - x_params[1]
        real = np.float64(_f32(x_params[0])) / np.float64(_f32(out[0]))
    else:
        rows, cols = ref.linear_taps(h, ho, mode, sh), ref.linear_taps(w, wo, mode, sw)
        y = ref.lerp(ref.lerp(q.astype(np.int64) - x_params[1], 2, rows), 3, cols)
        real = np.float64(_f32(x_params[0])) / (np.float64(_f32(out[0])) * rows[4] * cols[4])
    mult, shift = int8.quantize_multiplier(np.asarray(real, dtype=np.float64))
    return int8.requantize(y, mult.astype(np.int64), shift.astype(np.int64), out[1]).astype(
        np.int8)


CASES = [(method, mode, rounding)
         for mode in COORDINATE_MODES
         for method, rounding in ([("linear", "round_prefer_floor")]
                                  + [("nearest_neighbor", r) for r in NEAREST_MODES])]


@pytest.mark.parametrize("size", [(6, 4), (7, 3), (2, 1), (1, 5)])
@pytest.mark.parametrize(("method", "mode", "rounding"), CASES)
def test_kernel_equals_the_numpy_reference(method, mode, rounding, size):
    """Every mode and rounding, up/down, odd ratios and size 1: bit-exact on TVM's VM."""
    in_shape = (1, 3, 4, 5)
    out = (0.04, -7)
    mod = _lower(_module(method, out=out, size=size, in_shape=in_shape, mode=mode,
                         rounding=rounding))
    q = np.random.default_rng(len(mode) + size[0]).integers(-128, 128, in_shape).astype(np.int8)
    spec = ResizeSpec.from_sizes("nearest" if method != "linear" else "linear", mode,
                                 rounding, in_shape[2:], size)
    x = int8.dequantize(q, _f32(X[0]), X[1])
    got = int8.quantize(run_relax(mod, x), _f32(out[0]), out[1])
    np.testing.assert_array_equal(got, _reference(method, q, spec, X, out, rounding, mode))


@pytest.mark.parametrize("scales", [(Fraction(3, 5), Fraction(17, 10)), (Fraction(1, 3), 3)])
@pytest.mark.parametrize("mode", ["half_pixel", "align_corners", "half_pixel_symmetric"])
def test_given_scale_drives_the_source_coordinate(scales, mode):
    """scale 0.6 on 4 pixels: the 2 outputs read at 1/3 and 2 (ONNX), not at 1/2 and 5/2
    (``n_in / n_out = 2``); the compiler's tables equal the reference's independent ones."""
    spec = ResizeSpec("linear", mode, "", (4, 5), (int(4 * scales[0]), int(5 * scales[1])),
                      tuple(Fraction(s) for s in scales))
    for a, (n_in, n_out, scale) in enumerate((spec.axis(0), spec.axis(1))):
        i0, i1, w0, w1, d = spec.linear_taps(a)
        j0, j1, v0, v1, e = ref.linear_taps(n_in, n_out, mode, scale)
        assert (i0.tolist(), i1.tolist(), (w1 * e).tolist()) == (
            j0.tolist(), j1.tolist(), (v1 * d).tolist())
    if mode == "half_pixel" and scales[0] == Fraction(3, 5):
        i0, _, _, w1, d = spec.linear_taps(0)
        coords = [int(i) + Fraction(int(b), d) for i, b in zip(i0, w1, strict=True)]
        assert coords == [Fraction(1, 3), Fraction(2)]


def test_spec_round_trips_through_its_json_tag():
    spec = ResizeSpec("nearest", "tf_half_pixel_for_nn", "ceil", (4, 5), (2, 8),
                      (Fraction(3, 5), Fraction(17, 10)))
    assert ResizeSpec.from_json(spec.to_json()) == spec
    assert json.loads(spec.to_json())["scales"] == ["3/5", "17/10"]


@pytest.mark.parametrize("method", ["nearest_neighbor", "linear"])
def test_per_channel_input_params_are_left_alone(method):
    params = (np.array([0.05, 0.04], np.float32), np.zeros(2, np.int8))

    def build():
        return _module(method, X, params)

    tvm.ir.assert_structural_equal(_lower(build()), build())


def test_unsupported_relax_rounding_is_left_alone():
    """TVM's ``round`` rounding is no ONNX nearest_mode: not lowered, the float check names it."""
    def build():
        return _module("nearest_neighbor", rounding="round")

    tvm.ir.assert_structural_equal(_lower(build()), build())


def test_relax_default_rounding_is_tvms_floor():
    """A ``resize2d`` from torch.export has rounding ``""``: TVM floors (asymmetric here)."""
    lowered = _lower(_module("nearest_neighbor", mode="asymmetric", rounding="", size=(5, 3)))
    rows, cols = _tables(_kernel_call(lowered))
    assert rows.tolist() == [0, 0, 1, 1, 2] and cols.tolist() == [0, 0, 1]  # floor(o · n/m)
