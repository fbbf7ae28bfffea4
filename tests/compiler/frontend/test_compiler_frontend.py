"""Frontends: support table, checks, float numerics vs onnxruntime / torch, int8 models end to end."""

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper

from compiler import int8
from compiler.errors import CompilerError, InvalidModelError, UnsupportedOpError
from compiler.frontend import SUPPORTED_OPS, load_model, supported_ops_markdown
from compiler.frontend.onnx_ops import CONVERTERS
from compiler.passes import lower_to_integer
from compiler.passes.boundary import find_float_op
from tests.support import qdq_models as qm


def test_every_supported_op_has_a_converter_and_a_readme_row():
    assert set(SUPPORTED_OPS) == set(CONVERTERS)
    table = supported_ops_markdown()
    assert all(f"| {op} |" in table for op in SUPPORTED_OPS)


def test_readme_operator_table_is_the_generated_one():
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[3] / "README.md").read_text()
    assert supported_ops_markdown().strip() in readme, (
        "README.md's operator table drifted from compiler/frontend/support.py; paste the "
        "output of `python -c 'from compiler.frontend import supported_ops_markdown as f; "
        "print(f())'` into the README")


def _einsum_model():
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])
    w = helper.make_tensor("w", TensorProto.FLOAT, [3, 2], np.ones(6, np.float32))
    relu = helper.make_node("Relu", ["x"], ["r"], name="relu0")
    ein = helper.make_node("Einsum", ["r", "w"], ["y"], name="mix", equation="ij,jk->ik")
    return helper.make_model(helper.make_graph([relu, ein], "g", [x], [y], [w]),
                             opset_imports=[helper.make_opsetid("", 13)])


def test_unsupported_op_names_type_node_and_supported_list():
    with pytest.raises(UnsupportedOpError) as err:
        load_model(_einsum_model())
    msg = str(err.value)
    assert "Einsum" in msg and "'mix'" in msg and "Conv" in msg and "QuantizeLinear" in msg


def test_unsupported_attribute_is_rejected_before_import():
    model = _einsum_model()
    model.graph.node[1].CopyFrom(helper.make_node(
        "Resize", ["r", "", "s"], ["y"], name="up", mode="cubic"))
    model.graph.initializer.append(helper.make_tensor("s", TensorProto.FLOAT, [2], [1.0, 1.0]))
    model.graph.output[0].CopyFrom(helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3]))
    with pytest.raises(UnsupportedOpError, match="Resize.*'up'.*"):
        load_model(model)


def test_invalid_and_dynamic_models_raise_invalid_model_error(tmp_path):
    model = _einsum_model()
    model.graph.input[0].type.tensor_type.shape.dim[0].dim_param = "batch"
    with pytest.raises(InvalidModelError, match="static shape"):
        load_model(model)
    with pytest.raises(InvalidModelError):
        load_model(tmp_path / "missing.onnx")


def test_float_onnx_matches_onnxruntime(tmp_path):
    path = qm.float_onnx_model(tmp_path)
    imported = load_model(path)
    assert not imported.quantized and imported.inputs[0].dtype == "float32"
    x = np.random.default_rng(1).standard_normal(imported.inputs[0].shape).astype(np.float32)
    ours, ref = qm.run_relax(imported.mod, x), qm.run_onnxruntime(path, x)
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


def test_torch_export_matches_torch():
    model = qm.float_torch_model()
    x = torch.randn(1, 8, 16, 16, generator=torch.Generator().manual_seed(2))
    imported = load_model(torch.export.export(model, (x,)))
    assert imported.source == "torch.export" and imported.inputs[0].shape == (1, 8, 16, 16)
    ours = qm.run_relax(imported.mod, x.numpy())
    ref = model(x).detach().numpy()
    np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())


@pytest.mark.parametrize("builder", [qm.brevitas_block_model, qm.ort_quantized_model],
                         ids=["brevitas-qcdq-block", "onnxruntime-qdq"])
def test_int8_model_lowers_to_integer_only_and_matches_onnxruntime(tmp_path, builder):
    path = builder(tmp_path)
    lowered = lower_to_integer(load_model(path))
    assert find_float_op(lowered.mod["main"]) is None
    inp, out = lowered.inputs[0], lowered.outputs[0]
    assert inp.dtype == "int8" and out.dtype == "int8" and inp.scale and out.scale
    rng = np.random.default_rng(3)
    exact_all, worst = [], 0
    run = qm.relax_function(lowered.mod)
    for _ in range(3):
        x = rng.standard_normal(inp.shape).astype(np.float32)
        ours = run(int8.quantize(x, inp.scale, inp.zero_point))
        exact, max_lsb = qm.int8_agreement(ours, qm.run_onnxruntime(path, x), out.scale,
                                           out.zero_point)
        exact_all.append(exact)
        worst = max(worst, max_lsb)
    assert np.mean(exact_all) >= 0.999 and worst <= 1, (exact_all, worst)


def test_leftover_float_op_is_named(tmp_path):
    model = onnx.load(qm.brevitas_conv_model(tmp_path, act="none"))
    # Replace the output quantizer's input by a float Softmax: not a lowerable int8 pattern.
    q = next(n for n in model.graph.node if n.op_type == "QuantizeLinear"
             and n.input[0].endswith("Conv_output_0"))
    model.graph.node.insert(list(model.graph.node).index(q), helper.make_node(
        "Softmax", [q.input[0]], ["sm"], name="sm", axis=1))
    q.input[0] = "sm"
    with pytest.raises(CompilerError, match=r"float computation remains.*relax\.nn\.(conv2d|softmax)"):
        lower_to_integer(load_model(model))
