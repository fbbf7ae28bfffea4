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
from tests.conftest import require_tools

RTOL = 1e-4


def make_model(nodes, inputs, outputs, initializers) -> onnx.ModelProto:
    """A checked opset-17 model (IR version 8, which onnxruntime reads)."""
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    model = onnx.shape_inference.infer_shapes(model)
    onnx.checker.check_model(model)
    return model


def conv_model(rng, c_in, c_out, hw, k, stride, dilation, groups, pads) -> onnx.ModelProto:
    """x → Conv(bias) → y with the given geometry."""
    w = numpy_helper.from_array(
        rng.standard_normal((c_out, c_in // groups, k, k)).astype(np.float32), "w")
    b = numpy_helper.from_array(rng.standard_normal(c_out).astype(np.float32), "b")
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], strides=[stride, stride],
                            dilations=[dilation, dilation], group=groups, pads=pads)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c_in, hw, hw])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    return make_model([node], [x], [y], [w, b])


def op_zoo_model(rng, only: tuple[str, ...] | None = None) -> onnx.ModelProto:
    """One input, one branch per op: depthwise conv, add, concat, max/avg/global pooling,
    sigmoid, hardswish, relu6 (Clip). Resize has its own test below. `only` keeps the
    branches with these output names."""
    c, hw = 4, 8
    inits = [
        numpy_helper.from_array(rng.standard_normal((c, 1, 3, 3)).astype(np.float32), "dw_w"),
        numpy_helper.from_array(rng.standard_normal((1, c, 1, 1)).astype(np.float32), "bias"),
        numpy_helper.from_array(np.array([0.0], np.float32), "lo"),
        numpy_helper.from_array(np.array([6.0], np.float32), "hi"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "dw_w"], ["depthwise"], group=c, pads=[1, 1, 1, 1]),
        helper.make_node("Add", ["x", "bias"], ["add"]),
        helper.make_node("Concat", ["x", "add"], ["concat"], axis=1),
        helper.make_node("MaxPool", ["x"], ["maxpool"], kernel_shape=[3, 3], strides=[2, 2],
                         pads=[1, 1, 1, 1]),
        helper.make_node("AveragePool", ["x"], ["avgpool"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("GlobalAveragePool", ["x"], ["gap"]),
        helper.make_node("Sigmoid", ["x"], ["sigmoid"]),
        helper.make_node("HardSwish", ["x"], ["hardswish"]),
        helper.make_node("Clip", ["x", "lo", "hi"], ["relu6"]),
    ]
    if only is not None:
        nodes = [n for n in nodes if n.output[0] in only or n.output[0] == "add"]
    names = [n.output[0] for n in nodes]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, hw, hw])
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in names]
    return make_model(nodes, [x], outs, inits)


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


CONV_CASES = {
    # name: (c_in, c_out, hw, k, stride, dilation, groups, pads)
    "3x3_s1_pad1": (3, 8, 12, 3, 1, 1, 1, [1, 1, 1, 1]),
    "3x3_s2_pad1": (4, 8, 11, 3, 2, 1, 1, [1, 1, 1, 1]),
    "3x3_dil2": (4, 4, 12, 3, 1, 2, 1, [2, 2, 2, 2]),
    "1x1_pointwise": (8, 16, 6, 1, 1, 1, 1, [0, 0, 0, 0]),
    "groups2_asym_pad": (4, 6, 9, 3, 1, 1, 2, [0, 1, 2, 1]),
    "depthwise_5x5_s2": (6, 6, 13, 5, 2, 1, 6, [2, 2, 2, 2]),
    "valid_no_pad": (2, 3, 7, 3, 1, 1, 1, [0, 0, 0, 0]),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CONV_CASES))
def test_conv_matches_onnxruntime(case, tmp_path):
    require_tools("gcc", "make")
    rng = np.random.default_rng(len(case))
    compile_and_compare(conv_model(rng, *CONV_CASES[case]), tmp_path / "proj", rng)
