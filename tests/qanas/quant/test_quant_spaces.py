"""Int8 export of every registered space: no conv output is left float (integer lowering)."""

from __future__ import annotations

import onnx
import pytest
import torch
from onnx import TensorProto, helper

from qanas.quant import (
    ExportError,
    QuantSpec,
    calibrate,
    export_qdq,
    float_compute_edges,
    quantize_model,
)
from qanas.score import recalibrate_bn
from qanas.space import get_space, list_spaces
from qanas.supernet import build_supernet

SIZE = 64


def _min_subnet(name: str) -> torch.nn.Module:
    space = get_space(name)
    net = build_supernet(space, 6).extract(space.min_config()).eval()
    gen = torch.Generator().manual_seed(0)
    recalibrate_bn(net, [torch.randn(2, 3, SIZE, SIZE, generator=gen) for _ in range(2)])
    return net


@pytest.mark.parametrize("name", ["mbv2-deeplab", "squeezenas-small"])
def test_min_subnets_have_lraspp_sigmoid_gate(name):
    """Guards the export test below: these min subnets carry the LR-ASPP Conv -> Sigmoid gate."""
    space = get_space(name)
    net = build_supernet(space, 6).extract(space.resolve("min"))
    assert any(isinstance(m, torch.nn.Sigmoid) for m in net.modules())


@pytest.mark.slow
@pytest.mark.parametrize("name", list_spaces())
def test_space_export_has_no_float_conv_outputs(tmp_path, name):
    net = _min_subnet(name)
    gen = torch.Generator().manual_seed(1)
    qmodel = quantize_model(net, QuantSpec())
    calibrate(qmodel, [torch.randn(2, 3, SIZE, SIZE, generator=gen) for _ in range(2)])
    # export_qdq itself raises ExportError on a float conv output; check explicitly too.
    path = export_qdq(qmodel, torch.randn(1, 3, SIZE, SIZE, generator=gen), tmp_path / "m.onnx")
    model = onnx.load(str(path))
    assert float_compute_edges(model) == []
    # The LR-ASPP gate (Conv -> Sigmoid) is requantized: Sigmoid reads a DequantizeLinear.
    producers = {o: n for n in model.graph.node for o in n.output}
    for node in model.graph.node:
        if node.op_type in ("Sigmoid", "HardSigmoid", "HardSwish"):
            assert producers[node.input[0]].op_type == "DequantizeLinear", node.name


def _conv_then(op: str) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 4, 4])
    w = helper.make_tensor("w", TensorProto.FLOAT, [2, 2, 1, 1], [1.0, 0.0, 0.0, 1.0])
    s = helper.make_tensor("s", TensorProto.FLOAT, [], [0.1])
    z = helper.make_tensor("z", TensorProto.INT8, [], [0])
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], name="conv")]
    if op == "QuantizeLinear":
        nodes.append(helper.make_node("QuantizeLinear", ["c", "s", "z"], ["q"], name="q"))
    else:
        nodes.append(helper.make_node(op, ["c"], ["a"], name="act"))
        nodes.append(helper.make_node("QuantizeLinear", ["a", "s", "z"], ["q"], name="q"))
    nodes.append(helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], name="dq"))
    graph = helper.make_graph(nodes, "g", [x], [y], [w, s, z])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("op,ok", [("QuantizeLinear", True), ("Relu", True), ("Sigmoid", False),
                                   ("HardSwish", False)])
def test_float_compute_edges_rule(op, ok):
    bad = float_compute_edges(_conv_then(op))
    assert (bad == []) == ok, bad
    if not ok:
        assert bad == [("conv", op, "act")]


def test_export_rejects_float_conv_output(tmp_path):
    """A Brevitas model whose conv feeds a float op fails at export with a clear message."""
    import brevitas.nn as qnn

    model = torch.nn.Sequential(
        qnn.QuantIdentity(return_quant_tensor=True),
        qnn.QuantConv2d(3, 4, 1, return_quant_tensor=False),
        torch.nn.Sigmoid(),
        qnn.QuantIdentity()).eval()
    with pytest.raises(ExportError, match="unquantized"):
        export_qdq(model, torch.randn(1, 3, 8, 8), tmp_path / "bad.onnx")
