"""`run_int8_reference`: a QDQ ONNX model interpreted in NumPy integer arithmetic.

The independent reference for the compiler's int8 kernels (no TVM, no generated C):
it walks the ONNX graph, keeps ``DequantizeLinear`` outputs and the float ops after
them symbolic (`compiler.reference.values`), and at every ``QuantizeLinear`` computes
the group ``DQ → op(s) → Q`` in integers (`compiler.reference.groups`) with the
arithmetic of `compiler.int8` as ``docs/int8-arithmetic.md`` specifies it.

The model boundary is the same as the compiled model's (`compiler.passes.boundary`):
each float graph input is fed as the int8 tensor its ``QuantizeLinear`` produces, each
graph output is returned as the int8 tensor its ``DequantizeLinear`` reads, both by the
ONNX tensor name; uint8 tensors are int8 with ``zero_point − 128``. `boundary` lists
the names, shapes, scales and zero points.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from compiler.errors import InvalidModelError, UnsupportedOpError
from compiler.reference import kernels
from compiler.reference.groups import lower_group
from compiler.reference.values import Dequant, FloatOp, GraphInput, OutQuant, QTensor

#: Float ops that may sit inside a DQ → op → Q group.
FLOAT_OPS = frozenset({
    "Conv", "Gemm", "MatMul", "Add", "Sub", "Mul", "Concat", "Relu", "Clip", "Sigmoid",
    "HardSigmoid", "HardSwish", "AveragePool", "GlobalAveragePool", "MaxPool", "Resize",
    "Reshape", "Flatten", "Transpose",
})
#: Ops that only move or select values: applied to the integers of a per-tensor DQ.
_MOVES = frozenset({"Reshape", "Flatten", "Transpose", "MaxPool", "Identity"})


@dataclass(frozen=True)
class BoundaryTensor:
    """One int8 graph input or output: ``real = scale · (q - zero_point)``."""

    name: str
    shape: tuple[int, ...]
    scale: float
    zero_point: int
    dtype: str = "int8"


def _load(model) -> onnx.ModelProto:
    if isinstance(model, (str, Path)):
        model = onnx.load(str(model))
    if not isinstance(model, onnx.ModelProto):
        raise TypeError(f"expected an ONNX path or ModelProto, got {type(model).__name__}")
    try:
        return onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    except onnx.shape_inference.InferenceError as err:
        raise InvalidModelError(f"ONNX shape inference failed: {err}") from err


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _canonical(q: np.ndarray, zp: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """uint8 → int8 with zero point − 128 (same real values); other dtypes unchanged."""
    if q.dtype == np.uint8:
        return ((q.astype(np.int16) - 128).astype(np.int8),
                zp.astype(np.int64) - 128, 128)
    return q, zp.astype(np.int64), 0


def _f32_bound(v: float) -> float:
    info = np.finfo(np.float32)
    return float(np.clip(v, info.min, info.max))


class _Interpreter:
    def __init__(self, model: onnx.ModelProto):
        self.model = model
        self.graph = model.graph
        self.opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
                          13)
        self.shapes: dict[str, tuple[int, ...]] = {}
        for vi in list(self.graph.input) + list(self.graph.value_info) + list(self.graph.output):
            dims = vi.type.tensor_type.shape.dim
            if all(d.HasField("dim_value") for d in dims):
                self.shapes[vi.name] = tuple(d.dim_value for d in dims)
        self.env: dict[str, object] = {}

    # ---- helpers -------------------------------------------------------------------------
    def const(self, name: str, what: str) -> np.ndarray:
        v = self.env.get(name)
        if not isinstance(v, np.ndarray):
            raise UnsupportedOpError(f"{what}: input {name!r} must be a constant")
        return v

    def qparams(self, node: onnx.NodeProto, default_dtype) -> tuple[np.ndarray, np.ndarray]:
        scale = self.const(node.input[1], node.op_type).astype(np.float32)
        if len(node.input) > 2 and node.input[2]:
            zp = self.const(node.input[2], node.op_type)
        else:
            zp = np.zeros(scale.shape, dtype=default_dtype)
        return scale, zp

    # ---- nodes ---------------------------------------------------------------------------
    def fold(self, node: onnx.NodeProto) -> list:
        if node.op_type == "Shape":
            full = np.array(self.shapes[node.input[0]], dtype=np.int64)
            a = _attrs(node)
            return [full[a.get("start", 0):a.get("end", len(full))]]
        feeds = {n: self.env[n] for n in node.input if n}
        ref = ReferenceEvaluator(node, opsets={"": self.opset})
        return [np.asarray(v) for v in ref.run(None, feeds)]

    def dequantize(self, node: onnx.NodeProto, a: dict) -> Dequant:
        x = self.env[node.input[0]]
        q = x if isinstance(x, np.ndarray) else getattr(x, "q", None)
        if q is None:
            raise UnsupportedOpError(
                f"DequantizeLinear (node {node.name!r}) must read a QuantizeLinear output or a "
                "constant")
        declared = x.dtype if isinstance(x, np.ndarray) else (np.uint8 if x.offset else np.int8)
        scale, zp = self.qparams(node, declared)
        if isinstance(x, np.ndarray):
            q, zp, _ = _canonical(x, zp)
        else:
            zp = zp.astype(np.int64) - x.offset
        axis = a.get("axis", 1)
        axis = axis + q.ndim if axis < 0 else axis
        return Dequant(q, scale, zp, axis if scale.ndim else 0, isinstance(x, np.ndarray),
                       None if isinstance(x, np.ndarray) else x)

    def quantize(self, node: onnx.NodeProto, feeds: dict) -> QTensor:
        x = self.env[node.input[0]]
        scale, zp = self.qparams(node, np.uint8)
        offset = 128 if zp.dtype == np.uint8 else 0
        if zp.dtype not in (np.int8, np.uint8):
            raise UnsupportedOpError(f"QuantizeLinear (node {node.name!r}) to {zp.dtype}: "
                                     "only int8 and uint8 activations are supported")
        if isinstance(x, GraphInput):
            q = np.asarray(feeds[x.name])
            if q.shape != x.shape or q.min(initial=0) < -128 or q.max(initial=0) > 127:
                raise ValueError(f"input {x.name!r} must be int8 values of shape {x.shape}, "
                                 f"got {q.dtype} {q.shape}")
            return QTensor(q.astype(np.int8), offset)
        if scale.size != 1 or zp.size != 1:
            raise UnsupportedOpError(f"QuantizeLinear (node {node.name!r}): per-axis "
                                     "quantization of activations is not supported")
        out = OutQuant(float(scale.reshape(-1)[0]), int(zp.reshape(-1)[0]) - offset)
        y = lower_group(x, out)
        if y is None:
            what = x.describe() if isinstance(x, FloatOp) else type(x).__name__
            raise UnsupportedOpError(
                f"no int8 lowering for the group ending in QuantizeLinear (node {node.name!r}): "
                f"{what}. Supported groups: conv, gemm/matmul, add/sub/mul, concat, average "
                "pools, resize, data movement, element-wise tables (see "
                "compiler.reference.groups)")
        return QTensor(np.asarray(y).astype(np.int8), offset)

    def clip_int(self, node: onnx.NodeProto, x: QTensor, a: dict) -> QTensor:
        if self.opset < 11:
            lo, hi = a.get("min", -128 + x.offset), a.get("max", 127 + x.offset)
        else:
            lo = self.env[node.input[1]] if len(node.input) > 1 and node.input[1] else None
            hi = self.env[node.input[2]] if len(node.input) > 2 and node.input[2] else None
            lo = -128 + x.offset if lo is None else int(lo)
            hi = 127 + x.offset if hi is None else int(hi)
        return QTensor(np.clip(x.q, lo - x.offset, hi - x.offset).astype(np.int8), x.offset)

    def move(self, node: onnx.NodeProto, x: Dequant, a: dict) -> Dequant | None:
        """A data-movement op on the integers of a per-tensor (or transposed) DQ."""
        op = node.op_type
        if op == "Identity":
            return x
        if op == "Transpose":
            perm = a.get("perm", list(reversed(range(x.q.ndim))))
            axis = perm.index(x.axis) if x.scale.ndim else 0
            return Dequant(x.q.transpose(perm), x.scale, x.zero_point, axis, x.const, x.source)
        if not x.per_tensor:
            return None
        if op in ("Reshape", "Flatten"):
            return x.with_q(x.q.reshape(self.shapes[node.output[0]]))
        if op == "MaxPool" and not x.const:
            p = _pool_attrs(node, a)
            return x.with_q(kernels.max_pool2d(x.q, p["kernel_shape"], p["strides"], p["pads"]))
        return None

    def float_op(self, node: onnx.NodeProto, ins: list, a: dict) -> FloatOp:
        name = f"{node.op_type} (node {node.name or '<unnamed>'!r})"
        if node.op_type not in FLOAT_OPS:
            raise UnsupportedOpError(
                f"operator {name} is not supported by the NumPy int8 reference; supported: "
                f"{', '.join(sorted(FLOAT_OPS | {'QuantizeLinear', 'DequantizeLinear'}))}")
        if any(isinstance(v, GraphInput) for v in ins):
            raise UnsupportedOpError(f"operator {name} reads a float graph input directly; "
                                     "quantize every graph input first (QuantizeLinear)")
        if any(isinstance(v, QTensor) for v in ins):
            raise UnsupportedOpError(f"operator {name} reads a QuantizeLinear output as float")
        if node.op_type == "Clip":
            if self.opset < 11:
                lo, hi = a.get("min", -np.inf), a.get("max", np.inf)
            else:
                lo = float(ins[1].item()) if len(ins) > 1 and ins[1] is not None else -np.inf
                hi = float(ins[2].item()) if len(ins) > 2 and ins[2] is not None else np.inf
            a = {**a, "bounds": (_f32_bound(lo), _f32_bound(hi))}
        elif node.op_type in ("Conv", "AveragePool", "MaxPool"):
            a = _pool_attrs(node, a)
        elif node.op_type == "Concat":
            rank = len(self.shapes[node.output[0]])
            a = {**a, "axis": a["axis"] + rank if a["axis"] < 0 else a["axis"]}
        elif node.op_type == "Resize":
            a = _resize_attrs(node, a)
        elif node.op_type == "Gemm" and (a.get("transA", 0) or a.get("alpha", 1.0) != 1.0
                                         or a.get("beta", 1.0) != 1.0):
            raise UnsupportedOpError(f"operator {name} with transA/alpha/beta")
        return FloatOp(node, tuple(ins), a, self.shapes.get(node.output[0]))

    def step(self, node: onnx.NodeProto, feeds: dict) -> list:
        if node.domain not in ("", "ai.onnx"):
            raise UnsupportedOpError(f"operator {node.domain}.{node.op_type} is not supported")
        a = _attrs(node)
        ins = [self.env[n] if n else None for n in node.input]
        if node.op_type == "DequantizeLinear":
            return [self.dequantize(node, a)]
        if all(i is None or isinstance(i, np.ndarray) for i in ins) or (
                node.op_type == "Shape" and node.input[0] in self.shapes):
            return self.fold(node)
        if node.op_type == "QuantizeLinear":
            return [self.quantize(node, feeds)]
        if node.op_type == "Clip" and isinstance(ins[0], QTensor):
            return [self.clip_int(node, ins[0], a)]
        if node.op_type in _MOVES and isinstance(ins[0], Dequant):
            moved = self.move(node, ins[0], a)
            if moved is not None:
                return [moved]
        if node.op_type == "Identity":
            return [ins[0]]
        if node.op_type == "Concat" and _same_activation_quant(ins):
            axis = a["axis"] + ins[0].q.ndim if a["axis"] < 0 else a["axis"]
            return [ins[0].with_q(np.concatenate([v.q for v in ins], axis=axis))]
        return [self.float_op(node, ins, a)]

    def run(self, feeds: dict) -> dict[str, np.ndarray]:
        self.env = {i.name: numpy_helper.to_array(i) for i in self.graph.initializer}
        for inp in self.graph.input:
            if inp.name not in self.env:
                if inp.name not in feeds:
                    raise ValueError(f"missing input {inp.name!r}; inputs: "
                                     f"{[i.name for i in self.graph.input]}")
                self.env[inp.name] = GraphInput(inp.name, self.shapes[inp.name])
        for node in self.graph.node:
            for name, value in zip(node.output, self.step(node, feeds), strict=False):
                if name:
                    self.env[name] = value
        outputs = {}
        for out in self.graph.output:
            v = self.env[out.name]
            if not (isinstance(v, Dequant) and not v.const and v.per_tensor):
                raise UnsupportedOpError(
                    f"graph output {out.name!r} must be the DequantizeLinear of an int8 "
                    f"activation, got {v.describe() if isinstance(v, FloatOp) else type(v)}")
            outputs[out.name] = v.q.astype(np.int8)
        return outputs


def _same_activation_quant(ins: list) -> bool:
    """All Concat inputs are DQs of activations with one per-tensor quantization (hoistable)."""
    if not ins or not all(isinstance(v, Dequant) and not v.const and v.per_tensor for v in ins):
        return False
    return all((v.s, v.zp) == (ins[0].s, ins[0].zp) for v in ins[1:])


def _pool_attrs(node: onnx.NodeProto, a: dict) -> dict:
    name = f"{node.op_type} (node {node.name or '<unnamed>'!r})"
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", b"VALID"):
        raise UnsupportedOpError(f"{name}: auto_pad must be NOTSET or VALID")
    if a.get("ceil_mode", 0) or (node.op_type != "Conv" and any(
            d != 1 for d in a.get("dilations", [1, 1]))):
        raise UnsupportedOpError(f"{name}: ceil_mode=1 and pooling dilations are not supported")
    if node.op_type == "MaxPool" and (a.get("storage_order", 0) or len(node.output) > 1):
        raise UnsupportedOpError(f"{name}: storage_order / the Indices output")
    pads = [0, 0, 0, 0] if a.get("auto_pad", b"NOTSET") == b"VALID" else a.get("pads", [0] * 4)
    out = {**a, "pads": tuple(int(p) for p in pads),
           "strides": tuple(a.get("strides", [1, 1])),
           "dilations": tuple(a.get("dilations", [1, 1])),
           "group": int(a.get("group", 1)),
           "count_include_pad": int(a.get("count_include_pad", 0))}
    if "kernel_shape" in a:
        out["kernel_shape"] = tuple(a["kernel_shape"])
    return out


def _resize_attrs(node: onnx.NodeProto, a: dict) -> dict:
    mode = a.get("mode", b"nearest").decode()
    coord = a.get("coordinate_transformation_mode", b"half_pixel").decode()
    if mode not in ("nearest", "linear") or a.get("antialias", 0) or a.get("exclude_outside", 0):
        raise UnsupportedOpError(f"Resize (node {node.name!r}): mode={mode} (nearest and linear "
                                 "only, no antialias / exclude_outside)")
    if coord not in ("half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric"):
        raise UnsupportedOpError(f"Resize (node {node.name!r}): "
                                 f"coordinate_transformation_mode={coord}")
    return {"mode": mode, "coordinate_transformation_mode": coord,
            "nearest_mode": a.get("nearest_mode", b"round_prefer_floor").decode()}


def run_int8_reference(model, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Runs a QDQ ONNX model in NumPy integer arithmetic.

    Args:
        model: an ONNX path or ModelProto in QDQ form (Brevitas ``export_onnx_qcdq``,
            onnxruntime ``quantize_static``), as `compiler.frontend` accepts it.
        inputs: graph input name → the int8 tensor its QuantizeLinear would produce
            (uint8-quantized inputs as int8 with zero point − 128, see `boundary`).

    Returns:
        Graph output name → the int8 tensor its DequantizeLinear reads.

    Raises:
        UnsupportedOpError: (a NotImplementedError) an op or group with no int8 definition;
            the message names it.

    Example:
        >>> spec = boundary("net.onnx")  # doctest: +SKIP
        >>> x = np.zeros(spec.inputs[0].shape, np.int8)  # doctest: +SKIP
        >>> run_int8_reference("net.onnx", {spec.inputs[0].name: x})  # doctest: +SKIP
    """
    return _Interpreter(_load(model)).run(inputs)


@dataclass(frozen=True)
class Boundary:
    """The int8 inputs and outputs of a QDQ model (see `boundary`)."""

    inputs: tuple[BoundaryTensor, ...]
    outputs: tuple[BoundaryTensor, ...]


def boundary(model) -> Boundary:
    """Names, shapes, scales and (int8-canonical) zero points of a QDQ model's boundary.

    Each float input's QuantizeLinear and each output's DequantizeLinear, like
    `compiler.passes.strip_boundary` makes them the compiled model's I/O.
    """
    model = _load(model)
    g = model.graph
    consts = {i.name: numpy_helper.to_array(i) for i in g.initializer}
    for n in g.node:
        if n.op_type == "Constant":
            consts[n.output[0]] = numpy_helper.to_array(n.attribute[0].t)
    producer = {o: n for n in g.node for o in n.output}
    shapes = {vi.name: tuple(d.dim_value for d in vi.type.tensor_type.shape.dim)
              for vi in list(g.input) + list(g.value_info) + list(g.output)}

    def tensor(name: str, node: onnx.NodeProto, default_dtype) -> BoundaryTensor:
        scale = float(consts[node.input[1]].reshape(-1)[0])
        zp = (consts[node.input[2]] if len(node.input) > 2 and node.input[2]
              else np.zeros(1, default_dtype))
        offset = 128 if zp.dtype == np.uint8 else 0
        return BoundaryTensor(name, shapes[name], scale, int(zp.reshape(-1)[0]) - offset)

    ins = []
    for inp in g.input:
        if inp.name in consts:
            continue
        q = next((n for n in g.node if n.op_type == "QuantizeLinear" and n.input[0] == inp.name),
                 None)
        if q is None:
            raise UnsupportedOpError(f"graph input {inp.name!r} is not quantized")
        ins.append(tensor(inp.name, q, np.uint8))
    outs = []
    for out in g.output:
        dq = producer.get(out.name)
        if dq is None or dq.op_type != "DequantizeLinear":
            raise UnsupportedOpError(f"graph output {out.name!r} is not a DequantizeLinear")
        src = producer.get(dq.input[0])
        declared = np.uint8 if src is not None and _quantizes_to_uint8(src, consts) else np.int8
        outs.append(tensor(out.name, dq, declared))
    return Boundary(tuple(ins), tuple(outs))


def _quantizes_to_uint8(node: onnx.NodeProto, consts: dict) -> bool:
    """True when ``node`` is a QuantizeLinear to uint8 (explicit or default zero point)."""
    if node.op_type != "QuantizeLinear":
        return False
    if len(node.input) > 2 and node.input[2]:
        return consts[node.input[2]].dtype == np.uint8
    return True


__all__ = ["FLOAT_OPS", "Boundary", "BoundaryTensor", "boundary", "run_int8_reference"]
