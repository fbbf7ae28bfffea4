"""The base models of the QDQ fuzzer (`tests.support.fuzz_qdq`): tiny int8 QDQ graphs, one per op.

Each builder takes a ``np.random.Generator`` and returns a valid model (weights, scales
and zero points drawn from it) whose one float input is quantized to int8 and whose one
output is a DequantizeLinear. Written with ``onnx.helper`` (milliseconds each) rather
than exported from torch, so a thousand cases fit in minutes; ``ort_net`` is a small
float net quantized by onnxruntime's ``quantize_static`` (three variants, quantized once
per process), so the fuzzer also sees a real exporter's layout (names, ``(1,)`` scales).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class _Builder:
    """Appends nodes and initializers with unique names; `model` wraps them up."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.count = 0

    def _name(self, stem: str) -> str:
        self.count += 1
        return f"{stem}{self.count}"

    def const(self, stem: str, value: np.ndarray) -> str:
        name = self._name(stem)
        self.inits.append(numpy_helper.from_array(np.asarray(value), name))
        return name

    def node(self, op: str, inputs: list[str], **attrs) -> str:
        name = self._name(op.lower())
        out = f"{name}_out"
        self.nodes.append(helper.make_node(op, inputs, [out], name=name, **attrs))
        return out

    def input(self, shape: tuple[int, ...]) -> str:
        name = f"x{len(self.inputs)}"
        self.inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape)))
        return name

    def qdq(self, x: str, scale: float, zp: int = 0, dtype=np.int8) -> str:
        """``DQ(Q(x))`` sharing one scale and zero point."""
        s = self.const("scale", np.float32(scale))
        z = self.const("zp", np.array(zp, dtype))
        return self.node("DequantizeLinear", [self.node("QuantizeLinear", [x, s, z]), s, z])

    def act_input(self, shape: tuple[int, ...]) -> tuple[str, float]:
        """A float graph input quantized to int8; returns (DQ output, scale)."""
        scale = float(self.rng.uniform(0.02, 0.06))
        zp = int(self.rng.integers(-10, 11))
        return self.qdq(self.input(shape), scale, zp), scale

    def weight(self, shape: tuple[int, ...], axis: int = 0) -> tuple[str, np.ndarray]:
        """A per-channel symmetric int8 weight along ``axis``; returns (DQ output, scales)."""
        q = self.rng.integers(-127, 128, size=shape).astype(np.int8)
        scales = self.rng.uniform(0.005, 0.02, size=shape[axis]).astype(np.float32)
        w = self.const("w", q)
        s = self.const("w_scale", scales)
        z = self.const("w_zp", np.zeros(shape[axis], np.int8))
        return self.node("DequantizeLinear", [w, s, z], axis=axis), scales

    def bias(self, s_x: float, s_w: np.ndarray) -> str:
        """An int32 bias at scale ``s_x · s_w`` with zero point 0."""
        q = self.rng.integers(-2000, 2001, size=s_w.shape).astype(np.int32)
        s = self.const("b_scale", (np.float32(s_x) * s_w).astype(np.float32))
        z = self.const("b_zp", np.zeros(s_w.shape, np.int32))
        return self.node("DequantizeLinear", [self.const("b", q), s, z], axis=0)

    def output(self, x: str, scale: float, dtype=np.int8) -> str:
        zp = int(self.rng.integers(-5, 6)) + (128 if dtype == np.uint8 else 0)
        return self.qdq(x, scale, zp, dtype)

    def model(self, y: str, opset: int = 17) -> onnx.ModelProto:
        """The model with output ``y`` (its static shape from ONNX shape inference)."""
        graph = helper.make_graph(self.nodes, "fuzz", self.inputs, [], self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
        vi = next(v for v in inferred.graph.value_info if v.name == y)
        model.graph.output.append(vi)
        return model


def _conv(rng, depthwise: bool) -> onnx.ModelProto:
    b = _Builder(rng)
    c = int(rng.choice([2, 4]))
    size = int(rng.choice([5, 6, 8]))
    x, s_x = b.act_input((1, c, size, size))
    k = int(rng.choice([1, 3]))
    cout, group = (c, c) if depthwise else (int(rng.choice([2, 3, 4])), 1)
    w, s_w = b.weight((cout, c // group, k, k))
    y = b.node("Conv", [x, w, b.bias(s_x, s_w)], kernel_shape=[k, k], group=group,
               strides=[int(rng.integers(1, 3))] * 2, pads=[k // 2] * 4)
    act = rng.random()
    if act < 0.33:
        y = b.node("Relu", [y])
    elif act < 0.5:
        y = b.node("Clip", [y, b.const("lo", np.float32(0)), b.const("hi", np.float32(6))])
    return b.model(b.output(y, float(rng.uniform(0.05, 0.3)), rng.choice([np.int8, np.uint8])))


def _gemm(rng) -> onnx.ModelProto:
    b = _Builder(rng)
    k, n = int(rng.choice([4, 8, 16])), int(rng.choice([3, 5]))
    x, s_x = b.act_input((1, k))
    w, s_w = b.weight((n, k), axis=0)
    y = b.node("Gemm", [x, w, b.bias(s_x, s_w)], transB=1)
    return b.model(b.output(y, float(rng.uniform(0.05, 0.3))))


def _matmul(rng) -> onnx.ModelProto:
    b = _Builder(rng)
    k, n = int(rng.choice([4, 8])), int(rng.choice([3, 6]))
    x, _ = b.act_input((1, 2, k))
    w, _ = b.weight((k, n), axis=1)
    return b.model(b.output(b.node("MatMul", [x, w]), float(rng.uniform(0.05, 0.3))))


def _binary(rng, op: str) -> onnx.ModelProto:
    b = _Builder(rng)
    shape = (1, int(rng.choice([2, 3])), 4, 4)
    x0, _ = b.act_input(shape)
    x1, _ = b.act_input(shape)
    if op == "Concat":
        y = b.node("Concat", [x0, x1], axis=1)
    else:
        y = b.node(op, [x0, x1])
    return b.model(b.output(y, float(rng.uniform(0.03, 0.1))))


def _pool(rng, op: str) -> onnx.ModelProto:
    b = _Builder(rng)
    x, s_x = b.act_input((1, 3, 6, 6))
    k = int(rng.choice([2, 3]))
    y = b.node(op, [x], kernel_shape=[k, k], strides=[int(rng.integers(1, 3))] * 2)
    return b.model(b.output(y, s_x if op == "MaxPool" else float(rng.uniform(0.02, 0.06))))


def _resize(rng) -> onnx.ModelProto:
    b = _Builder(rng)
    x, s_x = b.act_input((1, 2, 4, 4))
    scales = b.const("sizes_scales", np.array([1, 1, 2, 2], np.float32))
    mode = str(rng.choice(["nearest", "linear"]))
    y = b.node("Resize", [x, "", scales], mode=mode)
    return b.model(b.output(y, s_x))


def _sigmoid(rng) -> onnx.ModelProto:
    b = _Builder(rng)
    x, _ = b.act_input((1, 2, 3, 3))
    return b.model(b.output(b.node("Sigmoid", [x]), 1.0 / 256))


def _float_net(variant: int) -> onnx.ModelProto:
    """A one-layer float net for onnxruntime to quantize: Conv → Relu, strided Conv, or Gemm.

    One layer, so one requantization: the 1 LSB bar against onnxruntime holds per
    requantization, and a deeper net would let a tie rounded differently early on grow
    downstream (seen: 2 LSB after conv → add → pool → gemm, with the compiled module
    bit-exact with the NumPy reference).
    """
    rng = np.random.default_rng(variant)
    c = 3
    if variant == 2:
        nodes = [helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="fc", transB=1)]
        shapes, x_shape, y_shape = {"w": (5, 12), "b": (5,)}, [1, 12], [1, 5]
    else:
        stride = 1 + variant
        nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c" if variant == 0 else "y"],
                                  name="conv", pads=[1] * 4, kernel_shape=[3, 3],
                                  strides=[stride] * 2)]
        if variant == 0:
            nodes.append(helper.make_node("Relu", ["c"], ["y"], name="relu"))
        shapes, x_shape = {"w": (4, c, 3, 3), "b": (4,)}, [1, c, 6, 6]
        y_shape = [1, 4, 6 // stride, 6 // stride]
    inits = [numpy_helper.from_array(rng.normal(0, 0.3, shape).astype(np.float32), name)
             for name, shape in shapes.items()]
    graph = helper.make_graph(
        nodes, "float", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@functools.cache
def _ort_quantized(variant: int) -> bytes:
    """`_float_net` quantized by onnxruntime's ``quantize_static`` (QDQ int8), serialized."""
    import tempfile

    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    model = _float_net(variant)
    shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    rng = np.random.default_rng(variant)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"x": rng.standard_normal(shape).astype(np.float32)}
                                 for _ in range(4)])

        def get_next(self):
            return next(self.batches, None)

    with tempfile.TemporaryDirectory() as tmp:
        src, dst = f"{tmp}/float.onnx", f"{tmp}/qdq.onnx"
        onnx.save(model, src)
        quantize_static(src, dst, Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
        return onnx.load(dst).SerializeToString()


def _ort_net(rng) -> onnx.ModelProto:
    model = onnx.ModelProto()
    model.ParseFromString(_ort_quantized(int(rng.integers(3))))
    return model


#: Base model name → builder(rng).
BASES: dict[str, Callable[[np.random.Generator], onnx.ModelProto]] = {
    "conv": lambda rng: _conv(rng, depthwise=False),
    "depthwise": lambda rng: _conv(rng, depthwise=True),
    "gemm": _gemm,
    "matmul": _matmul,
    "add": lambda rng: _binary(rng, "Add"),
    "concat": lambda rng: _binary(rng, "Concat"),
    "avgpool": lambda rng: _pool(rng, "AveragePool"),
    "maxpool": lambda rng: _pool(rng, "MaxPool"),
    "resize": _resize,
    "sigmoid": _sigmoid,
    "ort_net": _ort_net,
}


__all__ = ["BASES"]
