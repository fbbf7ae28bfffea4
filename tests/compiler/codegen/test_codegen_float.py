"""Emitted C on the host vs onnxruntime for float single-op models (1e-4 relative).

The fast test compiles one model whose branches are the single ops (one output each),
so the whole table costs one build. The slow tests compile one model per convolution
variant (shapes, strides, dilations, groups, padding).
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from compiler.driver import compile_model
from runtime.runners import get_runner
from tests.support.onnx_models import CONV_CASES, conv_model, make_model, op_zoo_model
from tests.support.tools import require_tools

RTOL = 1e-4


def compile_and_compare(model: onnx.ModelProto, out_dir, rng) -> dict:
    """Compiles for the host, runs the C and onnxruntime on one random input, compares."""
    result = compile_model(model, "host", out_dir)
    feeds = {}
    for inp in model.graph.input:
        shape = [d.dim_value for d in inp.type.tensor_type.shape.dim]
        feeds[inp.name] = rng.standard_normal(shape).astype(np.float32)
    ours = get_runner("host").run(out_dir, feeds).outputs
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    for name, ref in zip(names, sess.run(names, feeds), strict=True):
        got = ours[name]
        assert got.shape == ref.shape, name
        scale = max(float(np.abs(ref).max()), 1e-6)
        err = float(np.abs(got - ref).max()) / scale
        assert err <= RTOL, f"{name}: max error {err:.3g} of the output range"
    return {"result": result, "outputs": ours}


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    require_tools("gcc", "make")
    rng = np.random.default_rng(0)
    model = op_zoo_model(rng)
    return model, compile_and_compare(model, tmp_path_factory.mktemp("zoo"), rng)


def test_op_zoo_matches_onnxruntime(zoo):
    model, run = zoo
    assert set(run["outputs"]) == {o.name for o in model.graph.output}


def test_op_zoo_arena_meets_lower_bound(zoo):
    result = zoo[1]["result"]
    assert result.lower_bound_bytes <= result.arena_bytes <= result.lower_bound_bytes * 1.25
    assert result.weights_bytes == result.plan.weights_bytes() > 0
    assert not result.quantized


RESIZE_CASES = {
    "nearest_asymmetric": dict(mode="nearest", coordinate_transformation_mode="asymmetric",
                               nearest_mode="floor"),
    "linear_half_pixel": dict(mode="linear", coordinate_transformation_mode="half_pixel"),
    "linear_align_corners": dict(mode="linear", coordinate_transformation_mode="align_corners"),
}


@pytest.mark.parametrize("case", sorted(RESIZE_CASES))
def test_resize_x2_matches_onnxruntime(case, tmp_path):
    require_tools("gcc", "make")
    rng = np.random.default_rng(1)
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], **RESIZE_CASES[case])
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 5, 6])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    compile_and_compare(make_model([node], [x], [y], [scales]), tmp_path / "proj", rng)


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CONV_CASES))
def test_conv_matches_onnxruntime(case, tmp_path):
    require_tools("gcc", "make")
    rng = np.random.default_rng(len(case))
    compile_and_compare(conv_model(rng, *CONV_CASES[case]), tmp_path / "proj", rng)
