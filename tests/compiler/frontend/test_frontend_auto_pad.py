"""ONNX ``auto_pad`` (SAME_UPPER, SAME_LOWER, VALID) on Conv, AveragePool and MaxPool.

Odd input sizes with stride 2 make the SAME padding asymmetric, so UPPER and LOWER
differ. Each case is checked against onnxruntime: the float model imported to Relax,
and a QDQ int8 model (uint8 input with a nonzero zero point, so the padding is
folded into the kernel) lowered to integers, which must also equal the NumPy integer
reference bit for bit. onnxruntime refuses a dilated Conv with SAME padding; that case
is checked against ONNX's reference evaluator (`onnx.reference`) instead.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from compiler import int8
from compiler.errors import UnsupportedOpError
from compiler.padding import explicit_pads, same_pads
from tests.support import qdq_models as qm

IN_SHAPE = (1, 3, 7, 9)
X_SCALE, X_ZP = 0.02, 120  # uint8 input: int8 zero point −8 after canonicalisation
MODES = ("SAME_UPPER", "SAME_LOWER", "VALID")
OPS = {  # op: (attributes, output channels)
    "Conv": ({"kernel_shape": [3, 3], "strides": [2, 2]}, 4),
    "Conv_dilated": ({"kernel_shape": [3, 3], "strides": [2, 1], "dilations": [2, 2]}, 4),
    "Conv_depthwise": ({"kernel_shape": [3, 3], "strides": [2, 2], "group": 3}, 3),
    "AveragePool": ({"kernel_shape": [3, 3], "strides": [2, 2]}, 3),
    "AveragePool_incl": ({"kernel_shape": [2, 2], "strides": [2, 2], "count_include_pad": 1}, 3),
    "MaxPool": ({"kernel_shape": [3, 2], "strides": [2, 2]}, 3),
}


def _node(op: str, mode: str, inputs: list[str]):
    attrs, _ = OPS[op]
    return helper.make_node(op.split("_")[0], inputs, ["y"], auto_pad=mode, **attrs)


def _weights(op: str):
    attrs, cout = OPS[op]
    rng = np.random.default_rng(3)
    groups = attrs.get("group", 1)
    w = rng.integers(-127, 128, (cout, IN_SHAPE[1] // groups, *attrs["kernel_shape"]))
    return w.astype(np.int8), rng.uniform(0.005, 0.02, cout).astype(np.float32), \
        rng.integers(-500, 500, cout).astype(np.int32)


def _model(nodes, inits, inputs=("x",)) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "auto_pad", [helper.make_tensor_value_info(n, TensorProto.FLOAT, IN_SHAPE)
                            for n in inputs],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 9
    return onnx.shape_inference.infer_shapes(model, strict_mode=True)


def _float_model(op: str, mode: str) -> onnx.ModelProto:
    inits, names = [], ["x"]
    if op.startswith("Conv"):
        w, ws, b = _weights(op)
        inits = [numpy_helper.from_array(w.astype(np.float32) * ws.reshape(-1, 1, 1, 1), "w"),
                 numpy_helper.from_array((b * ws * np.float32(X_SCALE)).astype(np.float32),
                                         "b")]
        names += ["w", "b"]
    node = _node(op, mode, names)
    node.output[0] = "out"
    return _model([node], inits)


def _qdq_model(op: str, mode: str, y_scale: float) -> onnx.ModelProto:
    c = numpy_helper.from_array
    inits = [c(np.float32(X_SCALE), "xs"), c(np.uint8(X_ZP), "xz"),
             c(np.float32(y_scale), "ys"), c(np.int8(3), "yz")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "xs", "xz"], ["xq"]),
             helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"])]
    names = ["xd"]
    if op.startswith("Conv"):
        w, ws, b = _weights(op)
        inits += [c(w, "wq"), c(ws, "ws"), c(np.zeros(len(ws), np.int8), "wz"),
                  c(b, "bq"), c((ws * np.float32(X_SCALE)).astype(np.float32), "bs"),
                  c(np.zeros(len(ws), np.int32), "bz")]
        nodes += [helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], axis=0),
                  helper.make_node("DequantizeLinear", ["bq", "bs", "bz"], ["bd"], axis=0)]
        names += ["wd", "bd"]
    nodes += [_node(op, mode, names),
              helper.make_node("QuantizeLinear", ["y", "ys", "yz"], ["yq"]),
              helper.make_node("DequantizeLinear", ["yq", "ys", "yz"], ["out"])]
    return _model(nodes, inits)


def _input() -> np.ndarray:
    rng = np.random.default_rng(0)
    x = rng.uniform(-2.4, 2.6, IN_SHAPE).astype(np.float32)
    return int8.dequantize(int8.quantize(x, X_SCALE, X_ZP, 0, 255), X_SCALE, X_ZP).astype(
        np.float32)


def _ort(model: onnx.ModelProto, x: np.ndarray) -> np.ndarray:
    """onnxruntime's output; ONNX's own reference evaluator where onnxruntime refuses the
    case (a dilated Conv with SAME padding)."""
    import onnxruntime as ort

    conv = next(n for n in model.graph.node if n.op_type in ("Conv", "AveragePool", "MaxPool"))
    attrs = {a.name: helper.get_attribute_value(a) for a in conv.attribute}
    if attrs["auto_pad"].startswith(b"SAME") and any(d != 1 for d in attrs.get("dilations", [])):
        from onnx.reference import ReferenceEvaluator

        return ReferenceEvaluator(model).run(None, {"x": x})[0]
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def test_same_pads_put_the_odd_element_at_the_end_for_upper_and_the_start_for_lower():
    assert same_pads("SAME_UPPER", (7, 9), (3, 3), (2, 2), (1, 1)) == (1, 1, 1, 1)
    assert same_pads("SAME_UPPER", (8, 9), (3, 2), (2, 2), (1, 1)) == (0, 0, 1, 1)
    assert same_pads("SAME_LOWER", (8, 9), (3, 2), (2, 2), (1, 1)) == (1, 1, 0, 0)
    assert same_pads("SAME_UPPER", (7, 9), (3, 3), (2, 1), (2, 2)) == (2, 2, 2, 2)
    assert explicit_pads({"auto_pad": b"VALID", "pads": [1, 1, 1, 1]}) == (0, 0, 0, 0)
    assert explicit_pads({"pads": [1, 2, 3, 4]}) == (1, 2, 3, 4)


def test_same_without_static_shapes_or_an_unknown_mode_is_refused_with_the_fix():
    with pytest.raises(UnsupportedOpError, match="static input and kernel sizes"):
        explicit_pads({"auto_pad": b"SAME_UPPER"}, None, (3, 3), "Conv (node 'c')")
    with pytest.raises(UnsupportedOpError, match="SAME_LOWER"):
        explicit_pads({"auto_pad": b"SAME"}, (7, 7), (3, 3), "Conv (node 'c')")


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("op", list(OPS))
def test_float_auto_pad_matches_onnxruntime(op, mode):
    from compiler.frontend import load_model

    model, x = _float_model(op, mode), _input()
    expected = _ort(model, x)
    ours = qm.run_relax(load_model(model).mod, x)
    assert ours.shape == expected.shape
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("op", list(OPS))
def test_int8_auto_pad_matches_onnxruntime_and_the_numpy_reference(op, mode):
    from compiler.frontend import load_model
    from compiler.passes import lower_to_integer
    from compiler.reference import run_int8_reference

    x = _input()
    y_float = _ort(_float_model(op, mode), x)
    model = _qdq_model(op, mode, float(np.abs(y_float).max()) / 100)
    lowered = lower_to_integer(load_model(model))
    info = lowered.inputs[0]
    x_q = int8.quantize(x, info.scale, info.zero_point)
    ours = qm.run_relax(lowered.mod, x_q)
    out = lowered.outputs[0]
    exact, max_lsb = qm.int8_agreement(ours, _ort(model, x), out.scale, out.zero_point)
    assert exact >= 0.99 and max_lsb <= 1, (exact, max_lsb)
    ref = run_int8_reference(model, {"x": x_q})["out"]
    np.testing.assert_array_equal(ours, ref)
