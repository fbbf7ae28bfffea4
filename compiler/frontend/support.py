"""The one table of ONNX operators the compiler accepts, and the check that uses it.

`SUPPORTED_OPS` maps an op type to the conditions its attributes and inputs must
meet. `check_supported` walks a model with it before anything is imported, so an
unsupported operator fails fast with `UnsupportedOpError` and nothing is
half-compiled. `supported_ops_markdown` renders the same table for the README.

Nodes whose inputs are all constants (initializers, `Constant`, or `Shape` of a
statically shaped tensor) are folded at import time by ONNX's reference
evaluator, whatever their type, and are not checked against the table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import onnx
from onnx import helper

from compiler.errors import UnsupportedOpError
from compiler.padding import AUTO_PAD_MODES, auto_pad_mode

Check = Callable[[onnx.NodeProto, dict, "GraphFacts"], str | None]


@dataclass(frozen=True)
class GraphFacts:
    """What a condition may ask about a node's inputs."""

    constants: frozenset[str]
    shapes: dict[str, tuple[int, ...]]

    def is_const(self, name: str) -> bool:
        """True if tensor ``name`` is known at compile time (or is an omitted optional input)."""
        return name == "" or name in self.constants

    def rank(self, name: str) -> int | None:
        """The rank of tensor ``name``, or None when shape inference did not find it."""
        shape = self.shapes.get(name)
        return None if shape is None else len(shape)


@dataclass(frozen=True)
class OpSupport:
    """One row of the table: an op type, its conditions in words, and their check."""

    op_type: str
    conditions: str
    check: Check | None = None


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _pool_2d(node, attrs, facts):
    if facts.rank(node.input[0]) != 4:
        return "only 2-D (NCHW) inputs"
    if auto_pad_mode(attrs) not in AUTO_PAD_MODES:
        return f"auto_pad {auto_pad_mode(attrs)!r} (ONNX defines {', '.join(AUTO_PAD_MODES)})"
    if attrs.get("ceil_mode", 0):
        return "ceil_mode=1"
    if any(d != 1 for d in attrs.get("dilations", [1, 1])):
        return "dilations other than 1"
    if node.op_type == "MaxPool" and (len(node.output) > 1 and node.output[1]):
        return "the Indices output"
    if node.op_type == "MaxPool" and attrs.get("storage_order", 0):
        return "storage_order=1"
    return None


def _conv(node, attrs, facts):
    if facts.rank(node.input[0]) != 4:
        return "only 2-D convolutions (NCHW)"
    weight = node.input[3] if node.op_type == "QLinearConv" else node.input[1]
    if not facts.is_const(weight):
        return "the weight must be a constant"
    if auto_pad_mode(attrs) not in AUTO_PAD_MODES:
        return f"auto_pad {auto_pad_mode(attrs)!r} (ONNX defines {', '.join(AUTO_PAD_MODES)})"
    return None


def _gemm(node, attrs, facts):
    if attrs.get("transA", 0):
        return "transA=1"
    if attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
        return "alpha/beta other than 1"
    if not facts.is_const(node.input[1]):
        return "B must be a constant"
    return None


def _matmul(node, attrs, facts):
    if facts.is_const(node.input[1]):
        if facts.rank(node.input[1]) != 2:
            return "a constant right operand that is not 2-D"
        return None
    if any((facts.rank(n) or 0) < 2 for n in node.input[:2]):
        return "an activation operand of rank below 2"
    return None


def _slice(node, attrs, facts):
    if not all(facts.is_const(n) for n in node.input[1:]):
        return "starts, ends, axes and steps must be constants"
    return None


def _clip(node, attrs, facts):
    if not all(facts.is_const(n) for n in node.input[1:]):
        return "min and max must be constants"
    return None


_RESIZE_COORDS = (b"half_pixel", b"half_pixel_symmetric", b"pytorch_half_pixel",
                  b"align_corners", b"asymmetric", b"tf_half_pixel_for_nn")
_NEAREST_MODES = (b"round_prefer_floor", b"round_prefer_ceil", b"floor", b"ceil")


def _resize(node, attrs, facts):
    if facts.rank(node.input[0]) != 4:
        return "only 4-D (NCHW) inputs"
    if not all(facts.is_const(n) for n in node.input[1:]):
        return "roi, scales and sizes must be constants"
    mode = attrs.get("mode", b"nearest")
    if mode not in (b"nearest", b"linear"):
        return f"mode={mode.decode()} (nearest and linear only)"
    coord = attrs.get("coordinate_transformation_mode", b"half_pixel")
    if coord not in _RESIZE_COORDS:
        return (f"coordinate_transformation_mode={coord.decode()} (supported: "
                f"{', '.join(c.decode() for c in _RESIZE_COORDS)})")
    if mode == b"nearest" and attrs.get("nearest_mode", b"round_prefer_floor") \
            not in _NEAREST_MODES:
        return f"nearest_mode={attrs['nearest_mode'].decode()}"
    if attrs.get("antialias", 0) or attrs.get("exclude_outside", 0):
        return "antialias / exclude_outside"
    if attrs.get("keep_aspect_ratio_policy", b"stretch") != b"stretch":
        return f"keep_aspect_ratio_policy={attrs['keep_aspect_ratio_policy'].decode()}"
    if "axes" in attrs and sorted(a % 4 for a in attrs["axes"]) != [2, 3]:
        return f"axes={list(attrs['axes'])} (only the spatial axes 2 and 3)"
    return None


def _batchnorm(node, attrs, facts):
    if attrs.get("training_mode", 0) or any(node.output[1:]):
        return "training mode (running mean / variance outputs)"
    return None


def _reshape(node, attrs, facts):
    if not facts.is_const(node.input[1]):
        return "the shape must be a constant"
    return None


def _quant(node, attrs, facts):
    if attrs.get("block_size", 0):
        return "blocked quantization"
    if not all(facts.is_const(n) for n in node.input[1:]):
        return "scale and zero point must be constants"
    return None


def _qlinear_conv(node, attrs, facts):
    reason = _conv(node, attrs, facts)
    scales = [node.input[i] for i in (1, 2, 4, 5, 6, 7)]
    if reason is None and not all(facts.is_const(n) for n in scales):
        reason = "scales and zero points must be constants"
    return reason


_ROWS = [
    OpSupport("Conv", "2-D, constant weight, any stride/dilation/groups/pads, "
              "any auto_pad (NOTSET, VALID, SAME_UPPER, SAME_LOWER)", _conv),
    OpSupport("QLinearConv", "as Conv, constant scales and zero points", _qlinear_conv),
    OpSupport("ConvInteger", "as Conv (integer output, no requantization)", _conv),
    OpSupport("Gemm", "transA=0, alpha=beta=1, constant B", _gemm),
    OpSupport("MatMul", "constant 2-D right operand (a layer), or two activations of rank >= 2 "
              "(batched, numpy broadcasting; int8: both per-tensor, int32 accumulation, one "
              "requantization)", _matmul),
    OpSupport("Add", "numpy broadcasting"),
    OpSupport("Sub", "numpy broadcasting"),
    OpSupport("Mul", "numpy broadcasting"),
    OpSupport("Concat", "any axis"),
    OpSupport("Relu", ""),
    OpSupport("Clip", "constant min/max", _clip),
    OpSupport("Sigmoid", ""),
    OpSupport("HardSigmoid", "any alpha/beta"),
    OpSupport("HardSwish", ""),
    OpSupport("Softmax", "any axis from opset 13, the last one before; int8 "
              "(DequantizeLinear -> Softmax -> QuantizeLinear): the last axis, per-tensor, "
              "output scale below 1, TFLite Micro's fixed-point exp"),
    OpSupport("Resize", "opset >= 11, 4-D, H and W only, nearest (any nearest_mode) or "
              "linear, half_pixel / half_pixel_symmetric / pytorch_half_pixel / "
              "align_corners / asymmetric / tf_half_pixel_for_nn, constant scales (any, "
              "up or down) or sizes, axes 2 and 3; no cubic, tf_crop_and_resize, antialias, "
              "keep_aspect_ratio_policy", _resize),
    OpSupport("AveragePool", "2-D, ceil_mode=0, dilations 1, any pads/auto_pad", _pool_2d),
    OpSupport("MaxPool", "2-D, ceil_mode=0, dilations 1, any pads/auto_pad, no Indices output",
              _pool_2d),
    OpSupport("GlobalAveragePool", "4-D input"),
    OpSupport("BatchNormalization", "inference mode (one output)", _batchnorm),
    OpSupport("Reshape", "constant shape", _reshape),
    OpSupport("Flatten", "any axis"),
    OpSupport("Transpose", "any permutation"),
    OpSupport("Slice", "constant starts, ends, axes and steps, steps > 0", _slice),
    OpSupport("Identity", ""),
    OpSupport("QuantizeLinear", "int8/uint8, constant scale/zero point, per-tensor "
              "(per-axis for constants only)", _quant),
    OpSupport("DequantizeLinear", "int8/uint8 (int32 for a constant bias, signed INT4 for a "
              "symmetric Conv weight: [docs/int4-weights.md](docs/int4-weights.md)), constant "
              "scale/zero point, per-tensor (per-axis for constants only)", _quant),
]

#: op type → `OpSupport`; the single source of truth for what the compiler accepts.
SUPPORTED_OPS: dict[str, OpSupport] = {row.op_type: row for row in _ROWS}


def check_node(node: onnx.NodeProto, facts: GraphFacts) -> None:
    """Raises `UnsupportedOpError` unless ``node`` meets its row of `SUPPORTED_OPS`."""
    known = ", ".join(sorted(SUPPORTED_OPS))
    name = node.name or "<unnamed>"
    if node.domain not in ("", "ai.onnx"):
        raise UnsupportedOpError(
            f"operator {node.domain}.{node.op_type} (node {name!r}) is not supported; "
            f"supported operators: {known}"
        )
    row = SUPPORTED_OPS.get(node.op_type)
    if row is None:
        raise UnsupportedOpError(
            f"operator {node.op_type} (node {name!r}) is not supported; "
            f"supported operators: {known}"
        )
    reason = row.check(node, _attrs(node), facts) if row.check else None
    if reason is not None:
        raise UnsupportedOpError(
            f"operator {node.op_type} (node {name!r}) is not supported with {reason}; "
            f"{node.op_type} supports: {row.conditions}. Supported operators: {known}"
        )


def supported_ops_markdown() -> str:
    """The supported-operator table as Markdown, for the README."""
    lines = ["| ONNX operator | Conditions |", "| --- | --- |"]
    lines += [f"| {r.op_type} | {r.conditions or 'none'} |" for r in _ROWS]
    return "\n".join(lines)
