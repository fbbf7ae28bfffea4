"""A QDQ ONNX model → the int8 TFLite `Graph`, walking it as `compiler.reference` does.

The walk mirrors `compiler.reference.numpy_int8`: constants are folded, a
``DequantizeLinear`` of a constant stays a `Dequant` (weights, biases), a
``DequantizeLinear`` of an activation is an `Act` (a TFLite tensor and its
quantization), float ops between them stay symbolic `FloatOp` nodes, and at each
``QuantizeLinear`` the group is emitted as TFLite ops (`compiler.tflite.ops`). uint8
tensors are int8 with ``zero_point − 128`` (the same real values).

The boundary is the compiled model's (`compiler.reference.boundary`): each float
graph input becomes an int8 TFLite input (its QuantizeLinear's scale and zero point),
each graph output the int8 tensor its DequantizeLinear reads, named like the ONNX
tensors. 4-D tensors are NHWC in TFLite (NCHW in ONNX).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

from compiler.errors import UnsupportedOpError
from compiler.int4 import as_int8, int4_weight_digests
from compiler.reference.qdq_graph import (
    QDQGraphWalker,
    canonical_int8,
    load_model,
    node_attrs,
    pool_attrs,
)
from compiler.reference.values import Dequant, FloatOp, GraphInput, OutQuant
from compiler.tflite.groups import SUPPORTED_ONNX_OPS, emit_group
from compiler.tflite.layout import TO_NCHW, TO_NHWC, onnx_slice, onnx_transpose, permute
from compiler.tflite.model import Act, Graph, QAct, Quant, nhwc, tflite_axis

#: Float ops that may sit inside a DQ → op → Q group of an exportable model.
_GROUP_OPS = frozenset({"Conv", "Add", "Sub", "Mul", "Concat", "Relu", "Clip", "Sigmoid",
                        "HardSwish", "HardSigmoid", "AveragePool", "GlobalAveragePool",
                        "Resize", "MatMul", "Softmax"})

#: Data movement of int8 activations (`_Walker.move`), outside any group.
_MOVE_OPS = frozenset({"Identity", "MaxPool", "Reshape", "Flatten", "Transpose", "Slice"})


class _Walker(QDQGraphWalker):
    def __init__(self, model: onnx.ModelProto):
        super().__init__(model)
        self.g = Graph()

    # ---- quantization nodes --------------------------------------------------------------
    def dequantize(self, node: onnx.NodeProto, a: dict):
        x = self.env[node.input[0]]
        if isinstance(x, np.ndarray):
            scale, zp = self.qparams(node, x.dtype)
            q, zp, _ = canonical_int8(x, zp)
            axis = a.get("axis", 1)
            axis = axis + q.ndim if axis < 0 else axis
            return Dequant(q, scale, zp, axis if scale.ndim else 0, True, None)
        if not isinstance(x, QAct):
            raise UnsupportedOpError(
                f"DequantizeLinear (node {node.name!r}) must read a QuantizeLinear output or a "
                "constant")
        scale, zp = self.qparams(node, np.uint8 if x.offset else np.int8)
        if scale.size != 1 or zp.size != 1:
            raise UnsupportedOpError(f"DequantizeLinear (node {node.name!r}): per-axis "
                                     "activations are not supported")
        s, z = float(scale.reshape(-1)[0]), int(zp.reshape(-1)[0]) - x.offset
        if (s, z) != (x.scale, x.zero_point):
            raise UnsupportedOpError(
                f"DequantizeLinear (node {node.name!r}) uses scale {s}, zero point {z} but its "
                f"QuantizeLinear {x.scale}, {x.zero_point}: a TFLite tensor has one "
                "quantization; export the model with matching Q/DQ pairs")
        return Act(x.tensor, x.shape, s, z)

    def quantize(self, node: onnx.NodeProto) -> QAct:
        x = self.env[node.input[0]]
        scale, zp = self.qparams(node, np.uint8)
        offset = 128 if zp.dtype == np.uint8 else 0
        if zp.dtype not in (np.int8, np.uint8):
            raise UnsupportedOpError(f"QuantizeLinear (node {node.name!r}) to {zp.dtype}: "
                                     "only int8 and uint8 activations are supported")
        if scale.size != 1 or zp.size != 1:
            raise UnsupportedOpError(f"QuantizeLinear (node {node.name!r}): per-axis "
                                     "quantization of activations is not supported")
        s, z = float(scale.reshape(-1)[0]), int(zp.reshape(-1)[0]) - offset
        name = node.output[0]
        shape = self.shapes[name]
        if isinstance(x, GraphInput):
            if any(self.g.tensors[t].name == x.name for t in self.g.inputs):
                raise UnsupportedOpError(
                    f"graph input {x.name!r} is quantized by more than one QuantizeLinear; a "
                    "TFLite input has one quantization: quantize it once and reuse the result")
            t = self.g.tensor(x.name, nhwc(x.shape), "int8", Quant.per_tensor(s, z))
            self.g.inputs.append(t)
            return QAct(t, x.shape, s, z, offset)
        t = emit_group(self.g, x, OutQuant(s, z), name)
        return QAct(t, shape, s, z, offset)

    def clip_int(self, node: onnx.NodeProto, x: QAct, a: dict) -> QAct:
        lo, hi = self.integer_clip_bounds(node, a, x.offset)
        if lo - x.offset <= -128 and hi - x.offset >= 127:
            return x
        raise UnsupportedOpError(
            f"Clip (node {node.name!r}) of integer activations to [{lo}, {hi}] (a narrow or "
            "sub-8-bit activation range) has no TFLite int8 equivalent; export activations "
            "with full 8-bit range")

    # ---- data movement -------------------------------------------------------------------
    def move(self, node: onnx.NodeProto, x: Act, a: dict) -> Act:
        op, name = node.op_type, node.output[0]
        if op == "Identity":
            return x
        out_shape = self.shapes[name]
        if op == "MaxPool":
            p = pool_attrs(node, a, self.shapes)
            xt = x.tensor
            if any(p["pads"]):
                # ONNX MaxPool ignores padding; padding with -128 never wins a max.
                xt = self._pad_min(xt, p["pads"], name)
            y = self.g.tensor(name, nhwc(out_shape), "int8", x.quant)
            opts = schema.Pool2DOptionsT()
            opts.padding = schema.Padding.VALID
            opts.strideH, opts.strideW = p["strides"]
            opts.filterHeight, opts.filterWidth = p["kernel_shape"]
            self.g.op("MAX_POOL_2D", [xt], [y], opts)
            return Act(y, out_shape, x.scale, x.zero_point)
        if op in ("Reshape", "Flatten"):
            return Act(self._reshape(x, out_shape, name), out_shape, x.scale, x.zero_point)
        if op == "Transpose":
            perm = a.get("perm", list(reversed(range(len(x.shape)))))
            return Act(onnx_transpose(self.g, x.tensor, perm, name), out_shape, x.scale,
                       x.zero_point)
        if op == "Slice":
            args = [self.env[n] if n else None for n in node.input[1:]]
            if not all(v is None or isinstance(v, np.ndarray) for v in args):
                raise UnsupportedOpError(f"Slice (node {node.name!r}) with computed starts/ends "
                                         "has no TFLite export; make them constants")
            y = onnx_slice(self.g, x.tensor, x.shape, args, f"Slice (node {node.name!r})", name)
            return Act(y, out_shape, x.scale, x.zero_point)
        raise UnsupportedOpError(
            f"{op} (node {node.name!r}) of int8 activations is not supported by the TFLite "
            f"export; supported ONNX ops: {', '.join(SUPPORTED_ONNX_OPS)}")

    def _pad_min(self, x: int, pads, name: str) -> int:
        """PAD whose fill (the output zero point) is −128: a pad that never wins a max."""
        src = self.g.tensors[x]
        n, h, w, c = src.shape
        t, left, b, r = pads
        paddings = self.g.const(f"{name}/paddings",
                                np.array([[0, 0], [t, b], [left, r], [0, 0]], np.int32), "int32")
        y = self.g.tensor(f"{name}/pad", (n, h + t + b, w + left + r, c), "int8", src.quant)
        fill = self.g.const(f"{name}/fill", np.array(-128, np.int8), "int8", src.quant)
        self.g.op("PADV2", [x, paddings, fill], [y])
        return y

    def _reshape(self, x: Act, out_shape, name: str) -> int:
        """RESHAPE in ONNX (NCHW) element order, with TRANSPOSEs around it where 4-D
        (`compiler.tflite.layout.permute`: a RESHAPE where only length-1 axes move)."""
        xt = x.tensor
        if len(x.shape) == 4 and not (x.shape[2] == x.shape[3] == 1 or x.shape[1] == 1):
            xt = permute(self.g, xt, TO_NCHW, f"{name}/nchw")
        reorder = len(out_shape) == 4 and not (out_shape[2] == out_shape[3] == 1
                                               or out_shape[1] == 1)
        shape = tuple(out_shape) if reorder else nhwc(out_shape)
        src = self.g.tensors[xt]
        s = self.g.const(f"{name}/shape", np.array(shape, np.int32), "int32")
        y = self.g.tensor(f"{name}/reshape" if reorder else name, shape, "int8", src.quant)
        opts = schema.ReshapeOptionsT()
        opts.newShape = list(shape)
        self.g.op("RESHAPE", [xt, s], [y], opts)
        return permute(self.g, y, TO_NHWC, name) if reorder else y

    # ---- nodes ---------------------------------------------------------------------------
    def float_op(self, node: onnx.NodeProto, ins: list, a: dict) -> FloatOp:
        name = f"{node.op_type} (node {node.name or '<unnamed>'!r})"
        if node.op_type not in _GROUP_OPS:
            raise UnsupportedOpError(
                f"operator {name} has no TFLite int8 export; supported ONNX ops: "
                f"{', '.join(SUPPORTED_ONNX_OPS)}. Replace it in the model (search spaces "
                "use only these) or compile the model to C with compiler.compile_model")
        if any(isinstance(v, (GraphInput, QAct)) for v in ins):
            raise UnsupportedOpError(f"operator {name} reads a graph input or QuantizeLinear "
                                     "output as float; quantize and dequantize it first")
        a = self.float_op_attrs(node, ins, a)
        return FloatOp(node, tuple(ins), a, self.shapes.get(node.output[0]))

    def concat_same(self, node: onnx.NodeProto, ins: list, a: dict) -> Act | None:
        """Concat of activations that share one quantization: CONCATENATION, no rescale."""
        if not ins or not all(isinstance(v, Act) for v in ins):
            return None
        if any((v.scale, v.zero_point) != (ins[0].scale, ins[0].zero_point) for v in ins[1:]):
            return None
        shape = self.shapes[node.output[0]]
        y = self.g.tensor(node.output[0], nhwc(shape), "int8", ins[0].quant)
        opts = schema.ConcatenationOptionsT()
        opts.axis = tflite_axis(a["axis"], len(shape))
        self.g.op("CONCATENATION", [v.tensor for v in ins], [y], opts)
        return Act(y, shape, ins[0].scale, ins[0].zero_point)

    def step(self, node: onnx.NodeProto) -> list:
        if node.domain not in ("", "ai.onnx"):
            raise UnsupportedOpError(f"operator {node.domain}.{node.op_type} (node "
                                     f"{node.name!r}) has no TFLite int8 export")
        a = node_attrs(node)
        ins = [self.env[n] if n else None for n in node.input]
        if node.op_type == "DequantizeLinear":
            return [self.dequantize(node, a)]
        if all(i is None or isinstance(i, np.ndarray) for i in ins) or (
                node.op_type == "Shape" and node.input[0] in self.shapes):
            return self.fold(node)
        if node.op_type == "QuantizeLinear":
            return [self.quantize(node)]
        if node.op_type == "Clip" and isinstance(ins[0], QAct):
            return [self.clip_int(node, ins[0], a)]
        if node.op_type in _MOVE_OPS and isinstance(ins[0], Act):
            return [self.move(node, ins[0], a)]
        if node.op_type == "Identity":
            return [ins[0]]
        if node.op_type == "Concat":
            same = self.concat_same(node, ins, a)
            if same is not None:
                return [same]
        return [self.float_op(node, ins, a)]

    def run(self) -> Graph:
        # INT4 weights are the integers -8..7 (compiler.int4); conv filters of them are
        # written INT4 (compiler.tflite.ops.conv)
        self.env = {i.name: as_int8(numpy_helper.to_array(i)) for i in self.graph.initializer}
        for inp in self.graph.input:
            if inp.name not in self.env:
                self.env[inp.name] = GraphInput(inp.name, self.shapes[inp.name])
        for node in self.graph.node:
            for name, value in zip(node.output, self.step(node), strict=False):
                if name:
                    self.env[name] = value
        order = [i.name for i in self.graph.input]
        self.g.inputs.sort(key=lambda t: order.index(self.g.tensors[t].name))
        for out in self.graph.output:
            v = self.env[out.name]
            if not isinstance(v, Act):
                raise UnsupportedOpError(
                    f"graph output {out.name!r} must be the DequantizeLinear of an int8 "
                    f"activation, got {v.describe() if isinstance(v, FloatOp) else type(v)}")
            self.g.rename(v.tensor, out.name)
            self.g.outputs.append(v.tensor)
        return self.g


#: ONNX ops outside DQ → op → Q groups that the walk handles itself.
_WALK_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"}) | _MOVE_OPS


def unsupported_ops(model) -> list[str]:
    """Every node the export cannot map, as ``"OpType (node 'name')"``, without exporting.

    Nodes computed only from constants (weight quantization, shape arithmetic) are
    folded and never reported. An empty list means every op type is supported; a
    pattern can still be rejected by `export_tflite` (for example a clamp that is no
    TFLite fused activation), with a message that names it.
    """
    model = load_model(model)
    g = model.graph
    const = {i.name for i in g.initializer}
    bad = []
    for node in g.node:
        if all(not i or i in const for i in node.input) and node.op_type != "QuantizeLinear":
            const.update(node.output)
            continue
        if node.domain not in ("", "ai.onnx") or node.op_type not in _GROUP_OPS | _WALK_OPS:
            bad.append(f"{node.op_type} (node {node.name or '<unnamed>'!r})")
    return bad


def build_graph(model) -> Graph:
    """The int8 TFLite `Graph` of a QDQ ONNX model (path or ModelProto).

    Raises:
        UnsupportedOpError: an ONNX op, attribute or quantization with no TFLite int8
            equivalent; the message names the op, the node and what to change.
        InvalidModelError: the model fails ONNX shape inference.
    """
    proto = load_model(model)
    walker = _Walker(proto)
    values = {i.name: as_int8(numpy_helper.to_array(i)) for i in proto.graph.initializer}
    walker.g.int4_weights = int4_weight_digests(proto, values)
    return walker.run()


__all__ = ["build_graph", "unsupported_ops"]
