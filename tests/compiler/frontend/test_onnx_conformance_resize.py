"""Resize against ONNX's own backend node cases: float exactly as specified, int8 bit-exact.

`tests/support/onnx_conformance.py` binds each ONNX ``test_resize_*`` case the way a deployment
model holds it (roi, scales and sizes as initializers, ``X`` a graph input). Here:

* every case whose options the support table accepts (nearest / linear, every
  coordinate mode we claim, up- and downsampling by non-integer scales, ``sizes``)
  must compile and give the specified output (float tolerance of the tier); all of them
  are merged into one model so the host build happens once;
* the rest (cubic, tf_crop_and_resize, antialias, keep_aspect_ratio_policy) must
  be refused by the support table, naming the option;
* an int8 QDQ variant of each accepted case (``Q → DQ → Resize → Q → DQ`` with the same
  parameters) runs in the host C, the NumPy reference (bit-exact: both are the same
  integer arithmetic) and onnxruntime (at most 1 LSB, the documented bar of
  docs/int8-arithmetic.md), on full-range int8 inputs.

onnxruntime computes ``align_corners`` from the integer output length, while the ONNX
specification (and its reference implementation, which produced the expected outputs)
uses ``scale · length``; the two differ when that product is not an integer, so those
cases are compared with the specification only (`ORT_DEVIATES`).
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from compiler.driver import compile_model
from compiler.errors import UnsupportedOpError
from compiler.frontend import load_model
from compiler.reference import run_int8_reference
from runtime.runners import get_runner
from tests.support.int8_checks import agreement, onnxruntime_int8
from tests.support.onnx_conformance import (
    SUPPORTED,
    _int8_variant,
    _merged,
    _prefixed,
    bind_case,
    conformance_cases,
    mismatch,
)
from tests.support.tools import require_tools

#: Refused cases → the option the refusal must name.
REFUSED = {"cubic": "mode=cubic", "tf_crop_and_resize": "tf_crop_and_resize",
           "antialias": "antialias", "not_larger": "keep_aspect_ratio_policy",
           "not_smaller": "keep_aspect_ratio_policy"}
#: onnxruntime uses the integer output length for align_corners (see the module docstring).
ORT_DEVIATES = {"test_resize_downsample_scales_linear_align_corners"}


def _resize_cases() -> list[str]:
    return [n for n in conformance_cases() if n.startswith("test_resize_")]


def _float_variant(case, prefix):
    nodes, inits, rename = _prefixed(case, prefix)
    g = case.model.graph
    inputs = [helper.make_tensor_value_info(rename(v.name), TensorProto.FLOAT,
                                            list(case.feeds[v.name].shape)) for v in g.input]
    outputs = [helper.make_tensor_value_info(rename(o.name), TensorProto.FLOAT, None)
               for o in g.output]
    return {"nodes": nodes, "inits": inits, "inputs": inputs, "outputs": outputs,
            "feeds": {rename(k): v for k, v in case.feeds.items()},
            "expected": {rename(k): v for k, v in case.expected.items()}}


def test_the_supported_list_is_what_the_table_accepts():
    accepted = []
    for name in _resize_cases():
        try:
            load_model(bind_case(name).model)
        except UnsupportedOpError as err:
            option = next((v for k, v in REFUSED.items() if k in name), None)
            assert option is not None and option in str(err), f"{name}: {err}"
            continue
        accepted.append(name)
    assert tuple(accepted) == SUPPORTED


@pytest.mark.toolchain
def test_every_supported_case_gives_the_specified_float_output(tmp_path):
    require_tools("gcc", "make")
    model, feeds, expected = _merged(SUPPORTED, _float_variant)
    compile_model(model, "host", tmp_path / "p")
    outputs = get_runner("host").run(tmp_path / "p", feeds).outputs
    wrong = {n: why for n, e in expected.items() if (why := mismatch(outputs[n], e))}
    assert not wrong, wrong


@pytest.mark.toolchain
def test_int8_variants_are_bit_exact_with_the_reference_and_within_1_lsb_of_ort(tmp_path):
    require_tools("gcc", "make")
    model, feeds, cases = _merged(SUPPORTED, _int8_variant)
    result = compile_model(model, "host", tmp_path / "p")
    assert result.quantized and result.float_kernels == {}
    # One int8 kernel per resize: no intermediate tensor, no kernel scratch.
    assert [b for b in result.plan.buffers.values() if b.kind == "intermediate"] == []
    assert all(not k.workspace_bytes for k in result.kernels.values())
    assert len(result.plan.calls) == len(SUPPORTED)
    host = get_runner("host").run(tmp_path / "p", feeds).outputs
    ref = run_int8_reference(model, feeds)
    ort = onnxruntime_int8(model, feeds)
    for out, case in cases.items():
        np.testing.assert_array_equal(host[out].reshape(ref[out].shape), ref[out],
                                      err_msg=f"{case}: host C vs NumPy reference")
        if case not in ORT_DEVIATES:
            exact, worst = agreement(ref[out], ort[out])
            assert worst <= 1, f"{case}: {worst} LSB off onnxruntime ({exact:.1%} exact)"


def test_opset_10_resize_is_refused_with_the_fix():
    """Opset 10 Resize has asymmetric coordinates and no mode attribute: re-export asked."""
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    node = helper.make_node("Resize", ["x", "scales"], ["y"], mode="nearest")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, [1, 1, 2, 2])], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, None)], [scales])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 10)])
    model.ir_version = 7
    with pytest.raises(UnsupportedOpError, match="opset >= 11"):
        load_model(onnx.shape_inference.infer_shapes(model))


def test_tflite_export_refuses_a_bilinear_scale_it_cannot_express(tmp_path):
    """TFLite takes bilinear coordinates from the output size: a 0.6 scale must not export
    as the 4 → 2 resize it would become there (ONNX reads at 1/3 and 2, TFLite at ½ and 2½)."""
    from compiler.tflite import export_tflite

    model, _, _ = _merged(["test_resize_downsample_scales_linear"], _int8_variant)
    with pytest.raises(UnsupportedOpError, match="RESIZE_BILINEAR.*sizes"):
        export_tflite(model, tmp_path / "r.tflite")
    assert not (tmp_path / "r.tflite").exists()
    nearest, _, _ = _merged(["test_resize_upsample_scales_nearest"], _int8_variant)
    assert export_tflite(nearest, tmp_path / "n.tflite").op_counts["RESIZE_NEAREST_NEIGHBOR"] == 1
