"""What every reader of a QDQ ONNX graph needs: loading, attributes, constant folding.

`QDQGraphWalker` is the base of the NumPy integer reference
(`compiler.reference.numpy_int8`) and of the TFLite exporter
(`compiler.tflite.graph`): both walk the graph in order, fold constants, and read
the scales and zero points of QuantizeLinear / DequantizeLinear nodes the same way.
The attribute normalisers (`pool_attrs`, `resize_attrs`) are the single place where
an unsupported pooling or resize option is refused.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import onnx
from onnx import helper
from onnx.reference import ReferenceEvaluator

from compiler.errors import InvalidModelError, UnsupportedOpError
from compiler.padding import explicit_pads
from compiler.reference import kernels


def load_model(model) -> onnx.ModelProto:
    """An ONNX path or ModelProto, shape-inferred (strict); `InvalidModelError` if it fails."""
    if isinstance(model, (str, Path)):
        from compiler.onnx_file import read_onnx

        model = read_onnx(model)
    if not isinstance(model, onnx.ModelProto):
        raise TypeError(f"expected an ONNX path or ModelProto, got {type(model).__name__}")
    try:
        return onnx.shape_inference.infer_shapes(model, strict_mode=True, data_prop=True)
    except onnx.shape_inference.InferenceError as err:
        raise InvalidModelError(f"ONNX shape inference failed: {err}") from err


def node_attrs(node: onnx.NodeProto) -> dict:
    """The attributes of `node` as a name → Python value dict."""
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def canonical_int8(q: np.ndarray, zp: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """uint8 → int8 with zero point − 128 (same real values); other dtypes unchanged."""
    if q.dtype == np.uint8:
        return ((q.astype(np.int16) - 128).astype(np.int8),
                zp.astype(np.int64) - 128, 128)
    return q, zp.astype(np.int64), 0


def f32_bound(v: float) -> float:
    """`v` clamped to the finite float32 range (Clip bounds of ±inf)."""
    info = np.finfo(np.float32)
    return float(np.clip(v, info.min, info.max))


def pool_attrs(node: onnx.NodeProto, a: dict, shapes: dict | None = None) -> dict:
    """Normalised Conv / pooling attributes (pads, strides, dilations, group); unsupported options raise.

    ``shapes`` (tensor name → static shape) resolves ``auto_pad`` SAME_UPPER / SAME_LOWER
    (`compiler.padding.explicit_pads`) from the input's and the kernel's sizes.
    """
    name = f"{node.op_type} (node {node.name or '<unnamed>'!r})"
    shapes = shapes or {}
    in_shape = shapes.get(node.input[0])
    kernel = a.get("kernel_shape") or (shapes.get(node.input[1], ())[2:]
                                        if node.op_type == "Conv" else None)
    pads = explicit_pads(a, in_shape[2:] if in_shape else None, kernel or None, name)
    if a.get("ceil_mode", 0) or (node.op_type != "Conv" and any(
            d != 1 for d in a.get("dilations", [1, 1]))):
        raise UnsupportedOpError(f"{name}: ceil_mode=1 and pooling dilations are not supported")
    if node.op_type == "MaxPool" and (a.get("storage_order", 0) or len(node.output) > 1):
        raise UnsupportedOpError(f"{name}: storage_order / the Indices output")
    out = {**a, "pads": tuple(int(p) for p in pads),
           "strides": tuple(a.get("strides", [1, 1])),
           "dilations": tuple(a.get("dilations", [1, 1])),
           "group": int(a.get("group", 1)),
           "count_include_pad": int(a.get("count_include_pad", 0))}
    if "kernel_shape" in a:
        out["kernel_shape"] = tuple(a["kernel_shape"])
    return out


def resize_attrs(node: onnx.NodeProto, a: dict, ins: list | None = None, opset: int = 13,
                 in_shape=None) -> dict:
    """Normalised Resize attributes; unsupported modes raise `UnsupportedOpError`.

    ``scales`` is the exact scale of H and W (`kernels.onnx_scale` of the ``scales``
    input, or ``sizes / in`` when the model gives ``sizes``); None when unknown.
    """
    name = f"Resize (node {node.name!r})"
    mode = a.get("mode", b"nearest").decode()
    coord = a.get("coordinate_transformation_mode", b"half_pixel").decode()
    nearest = a.get("nearest_mode", b"round_prefer_floor").decode()
    if opset < 11:
        raise UnsupportedOpError(f"{name}: opset {opset} < 11; re-export with opset >= 11")
    if mode not in ("nearest", "linear") or a.get("antialias", 0) or a.get("exclude_outside", 0):
        raise UnsupportedOpError(f"{name}: mode={mode} (nearest and linear "
                                 "only, no antialias / exclude_outside)")
    if coord not in kernels.RESIZE_COORDINATE_MODES:
        raise UnsupportedOpError(f"{name}: coordinate_transformation_mode={coord}")
    if mode == "nearest" and nearest not in ("round_prefer_floor", "round_prefer_ceil",
                                             "floor", "ceil"):
        raise UnsupportedOpError(f"{name}: nearest_mode={nearest}")
    scales = None
    if ins is not None and in_shape is not None:
        axes = [int(v) % 4 for v in a.get("axes", [0, 1, 2, 3])]
        if sorted(axes) not in ([0, 1, 2, 3], [2, 3]):
            raise UnsupportedOpError(f"{name}: axes={list(a['axes'])} (H and W only)")

        def spatial(values) -> list:
            by_axis = dict(zip(axes, np.asarray(values).reshape(-1), strict=True))
            return [by_axis[2], by_axis[3]]

        sizes = ins[3] if len(ins) > 3 else None
        if sizes is not None and np.size(sizes):
            scales = tuple(Fraction(int(o), int(i)) for o, i in zip(spatial(sizes), in_shape[2:],
                                                                   strict=True))
        elif len(ins) > 2 and ins[2] is not None and np.size(ins[2]):
            scales = tuple(kernels.onnx_scale(v) for v in spatial(ins[2]))
    return {"mode": mode, "coordinate_transformation_mode": coord, "nearest_mode": nearest,
            "scales": scales}


class QDQGraphWalker:
    """Walks a QDQ ONNX graph node by node: folded constants, shapes, quantization parameters.

    Subclasses (`compiler.reference.numpy_int8`, `compiler.tflite.graph`) give the
    meaning of each node; this class holds what both need: the inferred static shapes,
    the environment of computed values (`env`), and constant folding.
    """

    def __init__(self, model: onnx.ModelProto):
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
        """The constant value `name` (an input of `what`), or `UnsupportedOpError`."""
        v = self.env.get(name)
        if not isinstance(v, np.ndarray):
            raise UnsupportedOpError(f"{what}: input {name!r} must be a constant")
        return v

    def qparams(self, node: onnx.NodeProto, default_dtype) -> tuple[np.ndarray, np.ndarray]:
        """(scale, zero point) of a QuantizeLinear / DequantizeLinear node."""
        scale = self.const(node.input[1], node.op_type).astype(np.float32)
        if len(node.input) > 2 and node.input[2]:
            zp = self.const(node.input[2], node.op_type)
        else:
            zp = np.zeros(scale.shape, dtype=default_dtype)
        return scale, zp

    def fold(self, node: onnx.NodeProto) -> list:
        """Outputs of `node` computed from constant inputs (onnx's reference evaluator)."""
        if node.op_type == "Shape":
            full = np.array(self.shapes[node.input[0]], dtype=np.int64)
            a = node_attrs(node)
            return [full[a.get("start", 0):a.get("end", len(full))]]
        feeds = {n: self.env[n] for n in node.input if n}
        ref = ReferenceEvaluator(node, opsets={"": self.opset})
        return [np.asarray(v) for v in ref.run(None, feeds)]

    def integer_clip_bounds(self, node: onnx.NodeProto, a: dict, offset: int) -> tuple[int, int]:
        """[lo, hi] of a Clip applied to integers stored as int8 + `offset` (uint8: 128).

        Absent bounds are the full 8-bit range; opset < 11 reads them from attributes.
        A lower bound above the upper one gives the upper one everywhere (ONNX).
        """
        if self.opset < 11:
            lo, hi = a.get("min", -128 + offset), a.get("max", 127 + offset)
        else:
            lo = self.env[node.input[1]] if len(node.input) > 1 and node.input[1] else None
            hi = self.env[node.input[2]] if len(node.input) > 2 and node.input[2] else None
            lo = -128 + offset if lo is None else int(lo)
            hi = 127 + offset if hi is None else int(hi)
        return min(lo, hi), hi

    def float_op_attrs(self, node: onnx.NodeProto, ins: list, a: dict) -> dict:
        """The attributes of a float op inside a DQ → op → Q group, normalised.

        Clip gets its float32 ``bounds`` (inputs from opset 11, attributes before);
        Conv and pools get `pool_attrs`; Concat a non-negative axis; Resize
        `resize_attrs`. Unsupported options raise `UnsupportedOpError`.
        """
        if node.op_type == "Clip":
            if self.opset < 11:
                lo, hi = a.get("min", -np.inf), a.get("max", np.inf)
            else:
                lo = float(ins[1].item()) if len(ins) > 1 and ins[1] is not None else -np.inf
                hi = float(ins[2].item()) if len(ins) > 2 and ins[2] is not None else np.inf
            return {**a, "bounds": (f32_bound(min(lo, hi)), f32_bound(hi))}
        if node.op_type in ("Conv", "AveragePool", "MaxPool"):
            return pool_attrs(node, a, self.shapes)
        if node.op_type == "Concat":
            rank = len(self.shapes[node.output[0]])
            return {**a, "axis": a["axis"] + rank if a["axis"] < 0 else a["axis"]}
        if node.op_type == "Resize":
            return resize_attrs(node, a, ins, self.opset, self.shapes.get(node.input[0]))
        return a
