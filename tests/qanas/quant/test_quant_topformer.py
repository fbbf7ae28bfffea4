"""Int8 fake-quant and QDQ export of `efficient-topformer` subnets (attention included).

Reference: onnxruntime on the exported QDQ model vs the Brevitas fake-quant model.
The graph check pins what the integer compiler relies on: every MatMul reads int8
operands (a DequantizeLinear, through Reshape/Transpose only) and is requantized;
every Softmax reads a DequantizeLinear and is requantized to uint8.
"""

from __future__ import annotations

import onnx
import pytest
from onnx import numpy_helper

from qanas.quant.export import compare_with_onnx, float_compute_edges
from qanas.space import get_space
from tests.support.quant_subnet import export_quantized_subnet

SPACE = "efficient-topformer"
LAYOUT_OPS = ("Reshape", "Transpose")


def _producer_through_layout(name: str, producers: dict) -> onnx.NodeProto | None:
    node = producers.get(name)
    while node is not None and node.op_type in LAYOUT_OPS:
        node = producers.get(node.input[0])
    return node


@pytest.mark.parametrize("which", ["min", pytest.param("seed", marks=pytest.mark.slow)])
def test_subnet_exports_int8_attention_matching_onnxruntime(tmp_path, which):
    qmodel, path, batches = export_quantized_subnet(SPACE, which, tmp_path / "m.onnx")
    model = onnx.load(str(path))
    assert float_compute_edges(model) == []

    producers = {o: n for n in model.graph.node for o in n.output}
    consumers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    constants = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    ops = [n.op_type for n in model.graph.node]
    space = get_space(SPACE)
    plan = space.plan(space.resolve(which))
    assert ops.count("MatMul") == 2 * len(plan.vit) and ops.count("Softmax") == len(plan.vit)
    assert "Shape" not in ops and "Gather" not in ops  # reshape targets folded to constants
    for node in model.graph.node:
        if node.op_type == "MatMul":
            for operand in node.input:
                assert _producer_through_layout(operand, producers).op_type == "DequantizeLinear"
            assert [c.op_type for c in consumers[node.output[0]]] == ["QuantizeLinear"]
        if node.op_type == "Softmax":
            assert producers[node.input[0]].op_type == "DequantizeLinear"
            (quant,) = consumers[node.output[0]]
            assert quant.op_type == "QuantizeLinear"
            assert constants[quant.input[2]].dtype == "uint8"  # probabilities are >= 0
        if node.op_type == "HardSigmoid":
            assert producers[node.input[0]].op_type == "DequantizeLinear"

    report = compare_with_onnx(qmodel, path, batches[1])
    print(f"{which}: fake-quant vs onnxruntime {report}")
    assert report["max_int_diff"] <= 1
    assert report["equal_share"] >= 0.999
