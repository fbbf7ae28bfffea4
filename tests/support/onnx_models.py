"""Small ONNX models built with `onnx.helper` for the compiler tests:
float convs and an op zoo, their QDQ int8 versions, one-op models."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


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
    sigmoid, hardswish, relu6 (Clip). Resize has its own test (`test_codegen_float`). `only` keeps the
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


def quantize_qdq(model: onnx.ModelProto, path, rng, samples: int = 8) -> onnx.ModelProto:
    """`model` quantized to int8 QDQ by onnxruntime, calibrated on normal noise."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    shapes = {i.name: [d.dim_value for d in i.type.tensor_type.shape.dim]
              for i in model.graph.input}

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{n: rng.standard_normal(s).astype(np.float32)
                                  for n, s in shapes.items()} for _ in range(samples)])

        def get_next(self):
            return next(self.batches, None)

    float_path, qdq_path = path / "float.onnx", path / "qdq.onnx"
    onnx.save(model, float_path)
    quantize_static(str(float_path), str(qdq_path), Reader(), quant_format=QuantFormat.QDQ,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
    return onnx.load(qdq_path)


INT8_ZOO = ("depthwise", "add", "concat", "maxpool", "avgpool", "gap")
"""Branches that quantize_static wraps in QDQ (it leaves Sigmoid, HardSwish and Clip in
float, which the integer lowering rightly refuses)."""


X_SHAPE = (1, 4, 8, 8)
X_SCALE, X_ZP = 0.05, 3


class _Zoo:
    """Builds a hand-written QDQ model: one quantized input, one DQ → op → Q → DQ per branch."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.nodes: list = []
        self.inits: list = []
        self.outputs: list[str] = []
        self.q("x", "x_q", X_SCALE, X_ZP)
        self.dq("x_q", "x_dq", X_SCALE, X_ZP)

    def const(self, name: str, value) -> str:
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def q(self, src: str, dst: str, scale: float, zp: int, dtype=np.int8) -> None:
        s = self.const(dst + "_s", np.float32(scale))
        z = self.const(dst + "_z", np.array(zp, dtype))
        self.nodes.append(helper.make_node("QuantizeLinear", [src, s, z], [dst]))

    def dq(self, src: str, dst: str, scale, zp, dtype=np.int8, axis: int | None = None) -> None:
        s = self.const(dst + "_s", np.asarray(scale, np.float32))
        z = self.const(dst + "_z", np.asarray(zp, dtype))
        kw = {} if axis is None else {"axis": axis}
        self.nodes.append(helper.make_node("DequantizeLinear", [src, s, z], [dst], **kw))

    def weight(self, name: str, shape, per_channel: bool, axis: int = 0) -> str:
        q = self.rng.integers(-127, 128, size=shape).astype(np.int8)
        n = shape[axis] if per_channel else 1
        scale = (self.rng.uniform(0.002, 0.02, n).astype(np.float32) if per_channel
                 else np.float32(0.01))
        self.dq(self.const(name + "_int", q), name, scale,
                np.zeros(n, np.int8) if per_channel else np.int8(0),
                axis=axis if per_channel else None)
        return name

    def branch(self, name: str, op: str, inputs: list[str], scale: float, zp: int,
               then: str | None = None, **attrs) -> None:
        """``op(inputs) [→ then] → Q(scale, zp) → DQ → output `name```."""
        self.nodes.append(helper.make_node(op, inputs, [name + "_f"], **attrs))
        if then is not None:
            self.nodes.append(helper.make_node(then, [name + "_f"], [name + "_a"]))
        self.q(name + ("_a" if then else "_f"), name + "_q", scale, zp)
        self.dq(name + "_q", name, scale, zp)
        self.outputs.append(name)

    def model(self) -> onnx.ModelProto:
        x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(X_SHAPE))
        outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in self.outputs]
        return make_model(self.nodes, [x], outs, self.inits)


def _one_op_model(op: str, shapes: list, out_shape, in_scales, out_scale, out_zp, out_type,
                  **attrs) -> onnx.ModelProto:
    """``DQ(x_i) -> op -> Q -> DQ`` with int8 inputs ``x_i`` quantized at the graph boundary."""
    nodes, inits, inputs = [], [], []
    for i, (shape, scale) in enumerate(zip(shapes, in_scales, strict=True)):
        inputs.append(helper.make_tensor_value_info(f"x{i}", TensorProto.FLOAT, shape))
        inits += [numpy_helper.from_array(np.float32(scale), f"s{i}"),
                  numpy_helper.from_array(np.int8(0), f"z{i}")]
        nodes += [helper.make_node("QuantizeLinear", [f"x{i}", f"s{i}", f"z{i}"], [f"q{i}"]),
                  helper.make_node("DequantizeLinear", [f"q{i}", f"s{i}", f"z{i}"], [f"d{i}"])]
    nodes.append(helper.make_node(op, [f"d{i}" for i in range(len(shapes))], ["y"], **attrs))
    zp = np.uint8(out_zp) if out_type == TensorProto.UINT8 else np.int8(out_zp)
    inits += [numpy_helper.from_array(np.float32(out_scale), "so"),
              numpy_helper.from_array(np.array(zp), "zo")]
    nodes += [helper.make_node("QuantizeLinear", ["y", "so", "zo"], ["qy"]),
              helper.make_node("DequantizeLinear", ["qy", "so", "zo"], ["out"])]
    graph = helper.make_graph(nodes, op.lower(), inputs,
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, out_shape)],
                              inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
