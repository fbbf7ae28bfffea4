"""A seeded mutation fuzzer over tiny int8 QDQ models, and its oracle.

Each case is a seed: it picks a base model (`BASES`: conv, depthwise, gemm, add,
concat, average and max pooling, resize, sigmoid), builds it with random weights and
scales, applies zero to two mutations (`MUTATIONS`: attributes, shapes, dtypes,
scales, zero points, biases, dropped or rewired inputs, opsets, IR versions) and
judges what qanas does with it (`run_case`):

* qanas refuses it with a `compiler.errors.CompilerError` subclass: fine;
* qanas compiles it (import + integer lowering, the host compile path up to code
  generation): onnxruntime must accept the model too, and the compiled model's int8
  outputs (the lowered Relax run by TVM, which is what the C kernels compute, or for a
  cheap check the NumPy integer reference) must equal onnxruntime's re-quantized
  outputs within the documented tolerance, 1 LSB (``docs/int8-arithmetic.md``);
* anything else (another exception type, a hang past the per-case timeout) is a
  finding, and so is a `CompilerStageError`: the safety net that keeps a library error
  from reaching the user raw caught it, which means a check in
  `compiler.frontend.validate` is missing.

The base models are written with ``onnx.helper`` (milliseconds each) rather than
exported from torch, so a thousand cases fit in minutes; ``ort_net`` is a small float
net quantized by onnxruntime's ``quantize_static`` (three variants, quantized once per
process), so the fuzzer also sees a real exporter's layout (names, ``(1,)`` scales).
"""

from __future__ import annotations

import functools
import signal
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

#: The documented int8 tolerance against onnxruntime (docs/int8-arithmetic.md).
MAX_LSB = 1
#: Seconds one case may take before it counts as a hang.
CASE_TIMEOUT_S = 60


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


# ---- mutations ---------------------------------------------------------------------------
def _init(model: onnx.ModelProto, pred) -> list[onnx.TensorProto]:
    return [t for t in model.graph.initializer if pred(t.name)]


def _role(model: onnx.ModelProto, role: str) -> set[str]:
    """Names of the tensors playing ``role`` in Q/DQ nodes (exporters name them freely).

    ``scale``: Q/DQ scales and Resize scales; ``zp``: zero points; ``q_const``: the
    integer constants DQ reads (weights, biases); ``bias``: those of type int32.
    """
    qdq = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    if role == "scale":
        return ({n.input[1] for n in qdq if len(n.input) > 1} | {
            n.input[2] for n in model.graph.node if n.op_type == "Resize" and len(n.input) > 2})
    if role == "zp":
        return {n.input[2] for n in qdq if len(n.input) > 2}
    consts = {n.input[0] for n in qdq if n.op_type == "DequantizeLinear"}
    if role == "bias":
        return {t.name for t in model.graph.initializer
                if t.name in consts and t.data_type == TensorProto.INT32}
    return consts


def _replace_init(model: onnx.ModelProto, old: onnx.TensorProto, new: onnx.TensorProto) -> None:
    new.name = old.name
    old.CopyFrom(new)


_BAD_SCALES = [0.0, -0.05, np.inf, -np.inf, np.nan, 1e30, 1e-40, 1e-30, 1e6, 3e4]


def _mut_scale(model, rng) -> str:
    names = _role(model, "scale")
    t = rng.choice(_init(model, lambda n: n in names))
    value = numpy_helper.to_array(t).astype(np.float32).copy()
    bad = np.float32(rng.choice(_BAD_SCALES))
    if value.ndim and rng.random() < 0.5:
        value[int(rng.integers(value.size))] = bad
    else:
        value[...] = bad
    _replace_init(model, t, numpy_helper.from_array(value))
    return f"scale {t.name}={float(bad)!r}"


def _mut_scale_length(model, rng) -> str:
    """A per-channel scale (and its zero point) one value too long or too short."""
    names = _role(model, "scale")
    ts = [t for t in _init(model, lambda n: n in names) if len(t.dims) == 1 and t.dims[0] > 1]
    if not ts:
        return _mut_scale(model, rng)
    t = ts[int(rng.integers(len(ts)))]
    value = numpy_helper.to_array(t)
    size = value.size + int(rng.choice([-1, 1]))
    _replace_init(model, t, numpy_helper.from_array(np.resize(value, size)))
    zp_names = {n.input[2] for n in model.graph.node
                if len(n.input) > 2 and n.input[1] == t.name}
    for z in _init(model, lambda n: n in zp_names):
        _replace_init(model, z, numpy_helper.from_array(np.resize(numpy_helper.to_array(z), size)))
    return f"scale {t.name} length {size}"


def _mut_per_channel(model, rng) -> str:
    """An activation's per-tensor scale and zero point become per-channel along axis 1."""
    inferred = onnx.shape_inference.infer_shapes(model)
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in [*inferred.graph.input, *inferred.graph.value_info]}
    scalars = {t.name for t in model.graph.initializer if not t.dims}
    nodes = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")
             and len(shapes.get(n.input[0], [])) >= 2 and len(n.input) > 2
             and n.input[1] in scalars and n.input[2] in scalars]
    if not nodes:
        return _mut_scale(model, rng)
    node = nodes[int(rng.integers(len(nodes)))]
    channels = shapes[node.input[0]][1]
    scale = float(numpy_helper.to_array(_init(model, lambda n: n == node.input[1])[0]))
    zp_t = _init(model, lambda n: n == node.input[2])[0]
    zp = numpy_helper.to_array(zp_t)
    for t, value in ((_init(model, lambda n: n == node.input[1])[0],
                      (scale * rng.uniform(0.5, 2.0, channels)).astype(np.float32)),
                     (zp_t, np.full(channels, zp, zp.dtype))):
        _replace_init(model, t, numpy_helper.from_array(value))
    return f"{node.input[1]} per channel ({channels})"


def _mut_zero_point(model, rng) -> str:
    names = _role(model, "zp")
    t = rng.choice(_init(model, lambda n: n in names))
    value = numpy_helper.to_array(t).copy()
    info = np.iinfo(value.dtype)
    pick = int(rng.choice([info.min, info.max, 1, -1 if info.min < 0 else 200, 2 ** 31 - 1]))
    value = value.astype(np.int64)
    value[...] = pick
    value = np.clip(value, info.min, info.max).astype(numpy_helper.to_array(t).dtype)
    _replace_init(model, t, numpy_helper.from_array(value))
    return f"zero point {t.name}={pick}"


_INT_RANGES = {TensorProto.INT16: (-2 ** 15, 2 ** 15 - 1), TensorProto.UINT16: (0, 2 ** 16 - 1),
               TensorProto.INT32: (-2 ** 31, 2 ** 31 - 1), TensorProto.UINT8: (0, 255),
               TensorProto.INT8: (-128, 127), TensorProto.INT4: (-8, 7),
               TensorProto.UINT4: (0, 15)}
_DTYPES = [TensorProto.INT16, TensorProto.UINT16, TensorProto.INT32, TensorProto.UINT8,
           TensorProto.INT8, TensorProto.INT4, TensorProto.UINT4, TensorProto.FLOAT8E4M3FN]


def _mut_dtype(model, rng) -> str:
    if rng.random() < 0.2:
        elem = int(rng.choice([TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.INT8]))
        model.graph.input[0].type.tensor_type.elem_type = elem
        return f"input dtype {TensorProto.DataType.Name(elem)}"
    names = _role(model, "zp") | _role(model, "q_const")
    t = rng.choice(_init(model, lambda n: n in names))
    elem = int(rng.choice(_DTYPES))
    value = numpy_helper.to_array(t).astype(np.float64).reshape(-1)
    if elem != TensorProto.FLOAT8E4M3FN:
        lo, hi = _INT_RANGES[elem]
        value = value.clip(lo, hi).astype(np.int64)
    new = helper.make_tensor(t.name, elem, list(t.dims), value.tolist())
    _replace_init(model, t, new)
    if elem not in (TensorProto.INT8, TensorProto.UINT8, TensorProto.INT32) and rng.random() < 0.7:
        model.opset_import[0].version = max(model.opset_import[0].version, 21)  # types of 21
    return f"dtype {t.name}={TensorProto.DataType.Name(elem)}"


def _mut_bias(model, rng) -> str:
    names = _role(model, "bias")
    ts = _init(model, lambda n: n in names)
    if not ts:
        return _mut_scale(model, rng)
    t = rng.choice(ts)
    value = numpy_helper.to_array(t).copy()
    pick = int(rng.choice([2 ** 31 - 1, -(2 ** 31), 2 ** 30, 10 ** 6]))
    value[int(rng.integers(value.size))] = pick
    _replace_init(model, t, numpy_helper.from_array(value))
    return f"bias {t.name}[.]={pick}"


_ATTR_VALUES = {
    "strides": lambda rng: [int(rng.choice([0, 1, 2, 3, 5, -1]))] * 2,
    "pads": lambda rng: [int(v) for v in rng.choice([-1, 0, 1, 2, 3, 6], size=4)],
    "dilations": lambda rng: [int(rng.choice([0, 1, 2, 3]))] * 2,
    "group": lambda rng: int(rng.choice([-1, 0, 1, 2, 3, 4])),
    "kernel_shape": lambda rng: [int(rng.choice([0, 1, 2, 3, 9]))] * 2,
    "axis": lambda rng: int(rng.choice([-5, -2, -1, 0, 1, 2, 3, 4, 5])),
    "count_include_pad": lambda rng: int(rng.choice([0, 1])),
    "transB": lambda rng: int(rng.choice([0, 1])),
    "transA": lambda rng: int(rng.choice([0, 1])),
    "alpha": lambda rng: float(rng.choice([1.0, 0.5, 2.0])),
    "coordinate_transformation_mode": lambda rng: str(rng.choice(
        ["half_pixel", "align_corners", "asymmetric", "pytorch_half_pixel", "tf_crop_and_resize"])),
    "nearest_mode": lambda rng: str(rng.choice(["round_prefer_floor", "floor", "ceil"])),
    "mode": lambda rng: str(rng.choice(["nearest", "linear", "cubic"])),
}
_NODE_ATTRS = {
    "Conv": ["strides", "pads", "dilations", "group", "kernel_shape"],
    "AveragePool": ["strides", "pads", "kernel_shape", "count_include_pad"],
    "MaxPool": ["strides", "pads", "kernel_shape", "dilations"],
    "QuantizeLinear": ["axis"], "DequantizeLinear": ["axis"], "Concat": ["axis"],
    "Gemm": ["transB", "transA", "alpha"],
    "Resize": ["mode", "coordinate_transformation_mode", "nearest_mode"],
}


def _mut_attr(model, rng) -> str:
    nodes = [n for n in model.graph.node if n.op_type in _NODE_ATTRS]
    node = nodes[int(rng.integers(len(nodes)))]
    key = str(rng.choice(_NODE_ATTRS[node.op_type]))
    value = _ATTR_VALUES[key](rng)
    kept = [a for a in node.attribute if a.name != key]
    del node.attribute[:]
    node.attribute.extend(kept + [helper.make_attribute(key, value)])
    return f"{node.name}.{key}={value}"


def _mut_shape(model, rng) -> str:
    vi = model.graph.input[int(rng.integers(len(model.graph.input)))]
    dims = vi.type.tensor_type.shape.dim
    axis = int(rng.integers(len(dims)))
    value = int(rng.choice([1, 2, 3, 5, 7, 16]))
    dims[axis].dim_value = value
    return f"{vi.name}.shape[{axis}]={value}"


def _mut_drop_input(model, rng) -> str:
    nodes = [n for n in model.graph.node if len(n.input) > 1]
    node = nodes[int(rng.integers(len(nodes)))]
    index = int(rng.integers(1, len(node.input)))
    if rng.random() < 0.5 and index == len(node.input) - 1:
        del node.input[index]
    else:
        node.input[index] = ""
    return f"{node.name}.input[{index}] dropped"


def _mut_rewire(model, rng) -> str:
    nodes = list(model.graph.node)
    i = int(rng.integers(1, len(nodes)))
    node = nodes[i]
    names = [model.graph.input[0].name] + [o for n in nodes[:i] for o in n.output] + [
        t.name for t in model.graph.initializer]
    index = int(rng.integers(len(node.input)))
    node.input[index] = str(rng.choice(names))
    return f"{node.name}.input[{index}]={node.input[index]}"


def _mut_resize_scales(model, rng) -> str:
    names = {n.input[2] for n in model.graph.node if n.op_type == "Resize" and len(n.input) > 2}
    ts = _init(model, lambda n: n in names)
    if not ts:
        return _mut_attr(model, rng)
    value = np.array([1, 1, *rng.choice([0.5, 1.0, 1.5, 2.0, 3.0, 0.0], size=2)], np.float32)
    _replace_init(model, ts[0], numpy_helper.from_array(value))
    return f"resize scales {value.tolist()}"


def _mut_opset(model, rng) -> str:
    value = int(rng.choice([7, 9, 10, 11, 13, 17, 19, 21, 23, 25, 28, 29, 30]))
    model.opset_import[0].version = value
    return f"opset={value}"


def _mut_ir_version(model, rng) -> str:
    value = int(rng.choice([0, 2, 3, 7, 10, 99]))
    model.ir_version = value
    return f"ir_version={value}"


#: Mutation name → function(model, rng) that edits the model in place and describes the edit.
MUTATIONS: dict[str, Callable[[onnx.ModelProto, np.random.Generator], str]] = {
    "scale": _mut_scale,
    "scale_length": _mut_scale_length,
    "per_channel": _mut_per_channel,
    "zero_point": _mut_zero_point,
    "dtype": _mut_dtype,
    "bias": _mut_bias,
    "attr": _mut_attr,
    "shape": _mut_shape,
    "drop_input": _mut_drop_input,
    "rewire": _mut_rewire,
    "resize_scales": _mut_resize_scales,
    "opset": _mut_opset,
    "ir_version": _mut_ir_version,
}


@dataclass(frozen=True)
class Case:
    """One fuzz case: the seed, the base model, the mutations applied and the model."""

    seed: int
    base: str
    mutations: tuple[str, ...]
    model: onnx.ModelProto

    def describe(self) -> str:
        """``seed=…, base=…, mutations=[…]``, enough to replay the case."""
        return f"seed={self.seed} base={self.base} mutations={list(self.mutations)}"


def make_case(seed: int, base: str | None = None,
              kinds: tuple[str, ...] | None = None) -> Case:
    """The case of ``seed``.

    Args:
        seed: seeds everything (weights, scales, which mutations, their values).
        base: the base model; default ``list(BASES)[seed % len(BASES)]``.
        kinds: the mutation kinds (`MUTATIONS` keys) to apply in order; default 0-2
            drawn at random. A regression case gives both, so that adding a base or a
            mutation kind later does not change it.
    """
    rng = np.random.default_rng(seed)
    base = base or list(BASES)[seed % len(BASES)]
    model = BASES[base](rng)
    if kinds is None:
        names = list(MUTATIONS)
        kinds = tuple(names[int(rng.integers(len(names)))]
                      for _ in range(int(rng.choice([0, 1, 1, 1, 2]))))
    done = tuple(MUTATIONS[kind](model, rng) for kind in kinds)
    return Case(seed, base, done, model)


# ---- oracle ------------------------------------------------------------------------------
class CaseTimeout(Exception):
    """A case ran past `CASE_TIMEOUT_S`."""


@contextmanager
def _deadline(seconds: int):
    def expire(signum, frame):
        raise CaseTimeout(f"case took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _ort(model: onnx.ModelProto):
    """onnxruntime with graph optimizations off: the ONNX semantics op by op.

    Its fused int8 kernels (QLinearAveragePool ...) overflow on extreme scale ratios
    that the ONNX definition and qanas compute correctly (seed 203: input scale 1e6).
    """
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 4
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])


@dataclass(frozen=True)
class Outcome:
    """What happened to a case: ``refused`` / ``compiled`` / ``finding``, and why."""

    status: str
    detail: str
    lsb: int | None = None


def _int8_feeds(lowered, rng):
    feeds_q, feeds_f = {}, {}
    for info in lowered.inputs:
        q = rng.integers(-128, 128, size=info.shape).astype(np.int8)
        feeds_q[info.name] = q
        feeds_f[info.name] = ((q.astype(np.float32) - np.float32(info.zero_point))
                              * np.float32(info.scale))
    return feeds_q, feeds_f


def _run_lowered(lowered, feeds_q: dict, engine: str, model: onnx.ModelProto) -> list:
    if engine == "reference":
        from compiler.reference import run_int8_reference

        outs = run_int8_reference(model, feeds_q)
        return [outs[o.name] for o in lowered.outputs]
    from tests.qdq_models import run_relax

    out = run_relax(lowered.mod, *(feeds_q[i.name] for i in lowered.inputs))
    return [out] if len(lowered.outputs) == 1 else list(out)


def run_case(case: Case, engine: str = "reference", timeout_s: int = CASE_TIMEOUT_S) -> Outcome:
    """Judges ``case`` (see the module docstring).

    Args:
        case: from `make_case`.
        engine: how a compiled case's int8 outputs are computed: ``"relax"`` runs the
            lowered module on TVM (what the C kernels compute), ``"reference"`` the NumPy
            integer reference (cheaper; it is bit-exact with the C on valid models).
        timeout_s: per-case limit before the case counts as a hang.
    """
    from compiler.errors import CompilerError, CompilerStageError
    from compiler.pipeline import resolve_model

    try:
        with _deadline(timeout_s):
            try:
                lowered = resolve_model(case.model, integer=None)  # compile's import + lowering
            except CompilerStageError as err:  # the safety net: a check is missing
                return Outcome("finding", f"unforeseen failure: {err}")
            except CompilerError as err:
                return Outcome("refused", f"{type(err).__name__}: {err}")
            try:
                sess = _ort(case.model)
            except Exception as err:  # noqa: BLE001 - any onnxruntime refusal
                return Outcome("finding", "qanas compiled a model onnxruntime rejects: "
                               f"{' '.join(str(err).split())[:300]}")
            rng = np.random.default_rng(case.seed)
            feeds_q, feeds_f = _int8_feeds(lowered, rng)
            try:
                refs = sess.run([o.name for o in sess.get_outputs()], feeds_f)
            except Exception as err:  # noqa: BLE001 - any onnxruntime refusal
                return Outcome("finding", "qanas compiled a model onnxruntime cannot run: "
                               f"{' '.join(str(err).split())[:300]}")
            ours = _run_lowered(lowered, feeds_q, engine, case.model)
    except CaseTimeout as err:
        return Outcome("finding", f"hang: {err}")
    except Exception as err:  # noqa: BLE001 - the oracle's whole point
        return Outcome("finding", f"raw {type(err).__module__}.{type(err).__name__}: "
                       f"{' '.join(str(err).split())[:300]}")
    worst = 0
    for info, mine, ref in zip(lowered.outputs, ours, refs, strict=True):
        ref_q = np.clip(np.rint(ref.astype(np.float32) / np.float32(info.scale))
                        + info.zero_point, -128, 127)
        worst = max(worst, int(np.abs(np.asarray(mine, np.int64) - ref_q.astype(np.int64)).max()))
    if worst > MAX_LSB:
        return Outcome("finding", f"compiled, but {worst} LSB off onnxruntime", worst)
    return Outcome("compiled", "matches onnxruntime", worst)
