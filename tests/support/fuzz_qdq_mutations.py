"""The mutations of the QDQ fuzzer (`tests.support.fuzz_qdq`): each edits a model in place.

Every mutation takes the model and a ``np.random.Generator`` and returns a one-line
description of what it changed (enough to read a finding). Tensors are found by their
role in Q/DQ nodes (`_role`), not by name, so the mutations work on any exporter's model.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


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


__all__ = ["MUTATIONS"]
