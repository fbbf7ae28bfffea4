"""Small int8 QDQ ONNX models built by hand for the golden files of the emitted C.

Built with `onnx.helper` from a seeded NumPy generator, not exported from torch, so the
models (and so the golden C) change only when the compiler does, never with an exporter's
version. Each is one pattern the search spaces' subnets compile to: a conv with ReLU, an
inverted residual (1x1 expand, depthwise 3x3, 1x1 project, residual add), and a
segmentation head (1x1 conv to classes, bilinear x2 upsample).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class _Builder:
    """Accumulates the nodes and initializers of one QDQ graph."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes: list = []
        self.inits: list = []

    def const(self, name: str, value: np.ndarray) -> str:
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def qdq(self, x: str, name: str, scale: float, zero_point: int = 0) -> str:
        """Quantize then dequantize activation `x` (int8, per tensor)."""
        s = self.const(f"{name}_scale", np.array(scale, np.float32))
        z = self.const(f"{name}_zp", np.array(zero_point, np.int8))
        self.nodes += [helper.make_node("QuantizeLinear", [x, s, z], [f"{name}_q"]),
                       helper.make_node("DequantizeLinear", [f"{name}_q", s, z], [name])]
        return name

    def conv(self, x: str, name: str, x_scale: float, cin: int, cout: int, k: int,
             group: int = 1) -> str:
        """Conv with int8 per-channel weights and an int32 bias, 'same' padding."""
        w = self.rng.integers(-127, 128, (cout, cin // group, k, k)).astype(np.int8)
        w_scale = (0.004 + 0.004 * self.rng.random(cout)).astype(np.float32)
        b = self.rng.integers(-300, 300, (cout,)).astype(np.int32)
        zeros8, zeros32 = np.zeros(cout, np.int8), np.zeros(cout, np.int32)
        self.nodes += [
            helper.make_node("DequantizeLinear",
                             [self.const(f"{name}_w", w), self.const(f"{name}_ws", w_scale),
                              self.const(f"{name}_wz", zeros8)], [f"{name}_wd"], axis=0),
            helper.make_node("DequantizeLinear",
                             [self.const(f"{name}_b", b),
                              self.const(f"{name}_bs", (w_scale * x_scale).astype(np.float32)),
                              self.const(f"{name}_bz", zeros32)], [f"{name}_bd"], axis=0),
            helper.make_node("Conv", [x, f"{name}_wd", f"{name}_bd"], [name], group=group,
                             pads=[k // 2] * 4),
        ]
        return name

    def relu(self, x: str, name: str) -> str:
        self.nodes.append(helper.make_node("Relu", [x], [name]))
        return name

    def model(self, name: str, in_shape, out_shape) -> onnx.ModelProto:
        graph = helper.make_graph(
            self.nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, out_shape)], self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        return model


def conv_relu_model(seed: int = 0) -> onnx.ModelProto:
    """x (1, 4, 8, 8) → Q/DQ → Conv 3x3 (8 channels) → ReLU → Q/DQ → y."""
    b = _Builder(seed)
    x = b.qdq("x", "x_dq", 0.05)
    y = b.relu(b.conv(x, "conv", 0.05, 4, 8, 3), "relu")
    b.qdq(y, "y", 0.04)
    return b.model("conv_relu", [1, 4, 8, 8], [1, 8, 8, 8])


def inverted_residual_model(seed: int = 0) -> onnx.ModelProto:
    """x (1, 8, 8, 8) → 1x1 expand (16) → ReLU → depthwise 3x3 → ReLU → 1x1 project (8)
    → + x → y, each activation int8 Q/DQ."""
    b = _Builder(seed)
    x = b.qdq("x", "x_dq", 0.05)
    e = b.qdq(b.relu(b.conv(x, "expand", 0.05, 8, 16, 1), "expand_relu"), "expand_dq", 0.04)
    d = b.qdq(b.relu(b.conv(e, "dw", 0.04, 16, 16, 3, group=16), "dw_relu"), "dw_dq", 0.04)
    p = b.qdq(b.conv(d, "project", 0.04, 16, 8, 1), "project_dq", 0.05)
    b.nodes.append(helper.make_node("Add", [p, x], ["sum"]))
    b.qdq("sum", "y", 0.08)
    return b.model("inverted_residual", [1, 8, 8, 8], [1, 8, 8, 8])


def resize_head_model(seed: int = 0) -> onnx.ModelProto:
    """x (1, 8, 4, 4) → 1x1 conv to 3 classes → Q/DQ → bilinear x2 Resize → Q/DQ → y."""
    b = _Builder(seed)
    x = b.qdq("x", "x_dq", 0.05)
    logits = b.qdq(b.conv(x, "classifier", 0.05, 8, 3, 1), "logits_dq", 0.1)
    b.nodes.append(helper.make_node(
        "Resize", [logits, b.const("roi", np.zeros(0, np.float32)),
                   b.const("scales", np.array([1, 1, 2, 2], np.float32))], ["up"],
        mode="linear", coordinate_transformation_mode="half_pixel"))
    b.qdq("up", "y", 0.1)
    return b.model("resize_head", [1, 8, 4, 4], [1, 3, 8, 8])


GOLDEN_MODELS: dict[str, Callable[[], onnx.ModelProto]] = {
    "conv_relu": conv_relu_model,
    "inverted_residual": inverted_residual_model,
    "resize_head": resize_head_model,
}
"""Case name (its folder under tests/compiler/golden/) → the model builder."""
