"""append_argmax: uint8 class maps, fused with a final resize, bit-exact with the reference.

One QDQ model with two outputs covers both paths in one build: ``up`` (a 4× bilinear
resize, whose argmax is fused into it: the full-resolution logits never exist) and
``dup`` (``Concat([x, x])``, every class tied with another: ties go to the lowest
index, and the argmax is a kernel of its own).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from compiler.driver import compile_model
from compiler.errors import CompilerError
from compiler.frontend import load_model
from compiler.passes import append_argmax, lower_to_integer
from compiler.reference import run_int8_reference
from runtime.runners import get_runner
from tests.support.int8_checks import full_range_inputs
from tests.support.onnx_models import _Zoo, make_model
from tests.support.tools import require_tools

UP = 4


def _seg_model(rng: np.random.Generator):
    z = _Zoo(rng)  # x: (1, 4, 8, 8), scale 0.05, zero point 3
    scales = z.const("scales", np.array([1, 1, UP, UP], np.float32))
    z.branch("up", "Resize", ["x_dq", "", scales], 0.04, -2, mode="linear")
    z.branch("dup", "Concat", ["x_dq", "x_dq"], 0.05, 3, axis=1)
    return z.model()


def _calls(mod) -> list[str]:
    return [b.value.args[0].name_hint for block in mod["main"].body.blocks
            for b in block.bindings
            if hasattr(b.value, "op") and getattr(b.value.op, "name", "") == "relax.call_tir"]


@pytest.fixture(scope="module")
def seg(tmp_path_factory):
    require_tools("gcc", "make")
    rng = np.random.default_rng(3)
    model = _seg_model(rng)
    labels = append_argmax(lower_to_integer(load_model(model)))
    out_dir = tmp_path_factory.mktemp("argmax") / "proj"
    result = compile_model(labels, "host", out_dir)
    feeds = full_range_inputs(model, rng)
    return {"model": model, "labels": labels, "result": result, "dir": out_dir, "feeds": feeds,
            "host": get_runner("host").run(out_dir, feeds).outputs,
            "ref": run_int8_reference(model, feeds, output="argmax"),
            "logits": run_int8_reference(model, feeds)}


def test_outputs_are_uint8_class_maps_with_keepdims(seg):
    infos = {t.name: t for t in seg["labels"].outputs}
    assert infos["up"].shape == (1, 1, 8 * UP, 8 * UP) and infos["up"].dtype == "uint8"
    assert infos["dup"].shape == (1, 1, 8, 8) and infos["up"].scale is None


def test_host_labels_equal_the_reference_argmax_bit_for_bit(seg):
    for name, ref in seg["ref"].items():
        np.testing.assert_array_equal(seg["host"][name].reshape(ref.shape), ref, err_msg=name)
        np.testing.assert_array_equal(ref[:, 0], np.argmax(seg["logits"][name], axis=1))


def test_ties_go_to_the_lowest_class(seg):
    dup = seg["host"]["dup"].reshape(1, 8, 8)
    assert dup.max() < 4  # channel c + 4 always ties with c: the second copy never wins
    assert (dup == 0).any() and len(np.unique(dup)) > 1


def test_resize_and_argmax_are_one_kernel_and_the_logits_never_exist(seg):
    names = _calls(seg["labels"].mod)
    assert sum("resize_argmax" in n for n in names) == 1 and not any(
        n.startswith("resize_linear") for n in names), names
    plan = json.loads((seg["dir"] / "plan.json").read_text())
    full = 4 * (8 * UP) ** 2  # int8 logits at full resolution
    assert all(b["size"] < full for b in plan["buffers"]), [
        (b["name"], b["size"]) for b in plan["buffers"] if b["size"] >= full]


def test_float_model_resize_argmax_matches_numpy():
    """The float resize kernel fuses too; labels equal NumPy's argmax of onnxruntime's logits."""
    require_tools("gcc", "make")
    import onnxruntime as ort

    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="linear")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 5, 3, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    model = make_model([node], [x], [y], [scales])
    labels = append_argmax(load_model(model))
    assert any("resize_argmax" in n for n in _calls(labels.mod))
    with tempfile.TemporaryDirectory() as tmp:
        compile_model(labels, "host", Path(tmp) / "p")
        feed = np.random.default_rng(0).standard_normal((1, 5, 3, 4)).astype(np.float32)
        got = get_runner("host").run(Path(tmp) / "p", {"x": feed}).outputs["y"]
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    want = np.argmax(sess.run(None, {"x": feed})[0], axis=1, keepdims=True).astype(np.uint8)
    np.testing.assert_array_equal(got.reshape(want.shape), want)


def _flat_model() -> onnx.ModelProto:
    node = helper.make_node("Sigmoid", ["x"], ["y"])
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    return make_model([node], [x], [y], [])


def test_a_non_4d_output_is_refused_with_the_fix():
    with pytest.raises(CompilerError, match="4-D NCHW logits.*output='logits'"):
        append_argmax(load_model(_flat_model()))


def test_more_than_256_classes_is_refused():
    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "scales")
    node = helper.make_node("Resize", ["x", "", "scales"], ["y"], mode="nearest")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 300, 2, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    with pytest.raises(CompilerError, match="at most 256"):
        append_argmax(load_model(make_model([node], [x], [y], [scales])))
