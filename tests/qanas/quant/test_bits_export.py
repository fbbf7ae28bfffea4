"""QDQ export of mixed-precision subnets: INT4 weight initializers (opset 21) run by onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from qanas.quant import QuantSpec, calibrate, compare_with_onnx, export_qdq, quantize_model
from qanas.quant.int4_export import INT4_OPSET, pack_int4_weights
from qanas.quant.layer_bits import conv_module_names
from tests.support.bits_subnets import _batches, seeded_subnet


@pytest.fixture(scope="module")
def subnet():
    return seeded_subnet()


def _export(subnet, spec, path):
    qmodel = quantize_model(subnet, spec)
    calibrate(qmodel, _batches(2, 1))
    return qmodel, export_qdq(qmodel, _batches(1, 2)[0][:1], path)


def test_int4_layers_export_as_int4_initializers_and_match_fake_quant(subnet, tmp_path):
    names = conv_module_names(subnet)
    four = tuple((n, 4) for n in names[1:-1:2])
    qmodel, path = _export(subnet, QuantSpec(layer_weight_bits=four), tmp_path / "mixed.onnx")
    model = onnx.load(str(path))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) == INT4_OPSET
    int4 = [i for i in model.graph.initializer if i.data_type == onnx.TensorProto.INT4]
    weights = [i for i in int4 if not i.name.endswith("_zero_point")]
    assert len(weights) == len(four)
    assert all(len(i.raw_data) == -(-int(np.prod(i.dims)) // 2) for i in weights)  # packed
    readers = {n.input[0]: n for n in model.graph.node if n.op_type == "DequantizeLinear"}
    assert all(readers[w.name].input[2].endswith("_zero_point") for w in weights)
    assert not any(n.op_type == "Clip" and n.input[0] in {w.name for w in weights}
                   for n in model.graph.node)
    result = compare_with_onnx(qmodel, path, _batches(1, 5)[0])
    assert result["max_int_diff"] <= 1 and result["equal_share"] >= 0.998, result


def test_int8_export_is_untouched(subnet, tmp_path):
    _, path = _export(subnet, QuantSpec(), tmp_path / "int8.onnx")
    data = path.read_bytes()
    model = onnx.load(str(path))
    same, packed = pack_int4_weights(model)
    assert same is model and packed == []
    assert same.SerializeToString() == data
    assert {o.version for o in model.opset_import if o.domain in ("", "ai.onnx")} == {17}


def test_nibbles_round_trip_through_onnx():
    from onnx import TensorProto, helper, numpy_helper

    from qanas.quant.int4_export import pack_nibbles

    codes = np.array([[-8, -7, 0], [1, 7, -1]], dtype=np.int8)
    tensor = helper.make_tensor("w", TensorProto.INT4, codes.shape, pack_nibbles(codes), raw=True)
    assert np.array_equal(numpy_helper.to_array(tensor).astype(np.int8), codes)
