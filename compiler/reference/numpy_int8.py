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

import numpy as np
import onnx
from onnx import numpy_helper

from compiler.errors import UnsupportedOpError
from compiler.int4 import as_int8
from compiler.reference import kernels
from compiler.reference.attention import ATTENTION_GROUPS
from compiler.reference.groups import GROUPS, lower_group
from compiler.reference.qdq_graph import (
    QDQGraphWalker,
    canonical_int8,
    load_model,
    node_attrs,
    pool_attrs,
)
from compiler.reference.values import Dequant, FloatOp, GraphInput, OutQuant, QTensor

#: Float ops that may sit inside a DQ → op → Q group.
FLOAT_OPS = frozenset({
    "Conv", "Gemm", "MatMul", "Add", "Sub", "Mul", "Concat", "Relu", "Clip", "Sigmoid",
    "HardSigmoid", "HardSwish", "AveragePool", "GlobalAveragePool", "MaxPool", "Resize",
    "Reshape", "Flatten", "Transpose", "Slice", "Softmax",
})
#: Ops that only move or select values: applied to the integers of a per-tensor DQ.
_MOVES = frozenset({"Reshape", "Flatten", "Transpose", "MaxPool", "Identity", "Slice"})


@dataclass(frozen=True)
class BoundaryTensor:
    """One int8 graph input or output: ``real = scale · (q - zero_point)``."""

    name: str
    shape: tuple[int, ...]
    scale: float
    zero_point: int
    dtype: str = "int8"


class _Interpreter(QDQGraphWalker):
    def __init__(self, model: onnx.ModelProto):
        super().__init__(model)
        self.model = model

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
            q, zp, _ = canonical_int8(x, zp)
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
        y = lower_group(x, out, (*GROUPS, *ATTENTION_GROUPS))
        if y is None:
            what = x.describe() if isinstance(x, FloatOp) else type(x).__name__
            raise UnsupportedOpError(
                f"no int8 lowering for the group ending in QuantizeLinear (node {node.name!r}): "
                f"{what}. Supported groups: conv, gemm/matmul, add/sub/mul, concat, average "
                "pools, resize, data movement, element-wise tables (see "
                "compiler.reference.groups), matmul of two activations, softmax "
                "(compiler.reference.attention)")
        return QTensor(np.asarray(y).astype(np.int8), offset)

    def clip_int(self, node: onnx.NodeProto, x: QTensor, a: dict) -> QTensor:
        lo, hi = self.integer_clip_bounds(node, a, x.offset)
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
        if op == "Slice" and all(isinstance(self.env.get(n), np.ndarray) for n in node.input[1:]
                                 if n):
            return x.with_q(_slice(x.q, [self.env[n] if n else None for n in node.input[1:]]))
        if op == "MaxPool" and not x.const:
            p = pool_attrs(node, a, self.shapes)
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
        a = self.float_op_attrs(node, ins, a)
        if node.op_type == "Gemm" and (a.get("transA", 0) or a.get("alpha", 1.0) != 1.0
                                         or a.get("beta", 1.0) != 1.0):
            raise UnsupportedOpError(f"operator {name} with transA/alpha/beta")
        return FloatOp(node, tuple(ins), a, self.shapes.get(node.output[0]))

    def step(self, node: onnx.NodeProto, feeds: dict) -> list:
        if node.domain not in ("", "ai.onnx"):
            raise UnsupportedOpError(f"operator {node.domain}.{node.op_type} is not supported")
        a = node_attrs(node)
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
        # INT4 weights are the integers -8..7: computed as int8 (compiler.int4)
        self.env = {i.name: as_int8(numpy_helper.to_array(i)) for i in self.graph.initializer}
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


def _slice(q: np.ndarray, args: list) -> np.ndarray:
    """ONNX Slice with constant starts, ends and optional axes and steps."""
    starts, ends = args[0], args[1]
    axes = args[2] if len(args) > 2 and args[2] is not None else np.arange(len(starts))
    steps = args[3] if len(args) > 3 and args[3] is not None else np.ones(len(starts), np.int64)
    index = [slice(None)] * q.ndim
    for start, end, axis, step in zip(starts, ends, axes, steps, strict=True):
        index[int(axis)] = slice(int(start), int(min(end, np.iinfo(np.int64).max)), int(step))
    return q[tuple(index)]


def _same_activation_quant(ins: list) -> bool:
    """All Concat inputs are DQs of activations with one per-tensor quantization (hoistable)."""
    if not ins or not all(isinstance(v, Dequant) and not v.const and v.per_tensor for v in ins):
        return False
    return all((v.s, v.zp) == (ins[0].s, ins[0].zp) for v in ins[1:])


def run_int8_reference(model, inputs: dict[str, np.ndarray],
                       output: str = "logits") -> dict[str, np.ndarray]:
    """Runs a QDQ ONNX model in NumPy integer arithmetic.

    Args:
        model: an ONNX path or ModelProto in QDQ form (Brevitas ``export_onnx_qcdq``,
            onnxruntime ``quantize_static``), as `compiler.frontend` accepts it.
        inputs: graph input name → the int8 tensor its QuantizeLinear would produce
            (uint8-quantized inputs as int8 with zero point − 128, see `boundary`).
        output: ``"logits"`` (the int8 outputs) or ``"argmax"``: each 4-D output's uint8
            class map ``argmax`` over axis 1, shape (N, 1, H, W), ties to the lowest
            index (`kernels.argmax_map`), what ``compile_model(..., output="argmax")``
            returns.

    Returns:
        Graph output name → the int8 tensor its DequantizeLinear reads (or its class map).

    Raises:
        UnsupportedOpError: (a NotImplementedError) an op or group with no int8 definition;
            the message names it.

    Example:
        >>> spec = boundary("net.onnx")  # doctest: +SKIP
        >>> x = np.zeros(spec.inputs[0].shape, np.int8)  # doctest: +SKIP
        >>> run_int8_reference("net.onnx", {spec.inputs[0].name: x})  # doctest: +SKIP
    """
    if output not in ("logits", "argmax"):
        raise ValueError(f"output={output!r}: use 'logits' or 'argmax'")
    outputs = _Interpreter(load_model(model)).run(inputs)
    if output == "argmax":
        outputs = {name: kernels.argmax_map(y) for name, y in outputs.items()}
    return outputs


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
    model = load_model(model)
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
