"""Builders of small QDQ ONNX models with int4 (and int8) convolution weights, opset 21.

The form is what an int4-aware exporter writes: each Conv reads
``DequantizeLinear(INT4 initializer, per-channel float scale, INT4 zero point 0 or none)``,
activations are int8 ``QuantizeLinear``/``DequantizeLinear`` pairs and biases int32 at
``s_x · s_w``. Activation scales are calibrated on a float forward pass (torch) of the
dequantized weights, so the int8 model follows its float twin closely.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import ml_dtypes
import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

OPSET = 21


@dataclass(frozen=True)
class ConvSpec:
    """One layer: ``kind`` "pw" (1x1), "conv" (k x k) or "dw" (depthwise); weight bits 4/8.

    ``narrow``: int4 weights in [-7, 7], else [-8, 7]. ``residual`` > 0: the layer's
    quantized output is added (a QDQ ``Add``) to the input of the layer that many layers
    back (3 for an expand → depthwise → project block).
    """

    kind: str
    out_c: int
    kernel: int = 1
    stride: int = 1
    bits: int = 4
    relu: bool = True
    per_channel: bool = True
    zero_point: bool = True
    narrow: bool = True
    residual: int = 0


MIXED = (ConvSpec("conv", 8, 3, 2, bits=8), ConvSpec("pw", 16, bits=4),
         ConvSpec("dw", 16, 3, 1, bits=4), ConvSpec("conv", 12, 3, 1, bits=4),
         ConvSpec("pw", 8, bits=8, relu=False))
"""A mixed int4/int8 stack: stem (int8), expand (int4), depthwise, k x k and project."""

FUSED = (ConvSpec("conv", 8, 3, 2, bits=8),
         ConvSpec("pw", 24, bits=4), ConvSpec("dw", 24, 3, bits=8),
         ConvSpec("pw", 8, bits=4, relu=False, residual=3),
         ConvSpec("pw", 32, bits=8), ConvSpec("dw", 32, 3, 2, bits=8),
         ConvSpec("pw", 12, bits=4, relu=False))
"""Two inverted residuals the compiler fuses: int4 expand and project with a residual add,
then a stride-2 block with an int8 expand and an int4 project."""

PATCH_HEAD = (ConvSpec("conv", 8, 3, 2, bits=8), ConvSpec("conv", 12, 3, 1, bits=4),
              ConvSpec("pw", 24, bits=4), ConvSpec("dw", 24, 3, 2, bits=8),
              ConvSpec("pw", 16, bits=4, relu=False),
              ConvSpec("pw", 32, bits=8), ConvSpec("dw", 32, 3, 1, bits=8),
              ConvSpec("pw", 16, bits=8, relu=False))
"""A head of int8 and int4 convs (3×3 and 1×1) that ``--optimise size`` runs as the patch
stage (at 40×40 with the extra-MAC bound lifted), then an int8 block."""


def _quantize_weights(w: np.ndarray, spec: ConvSpec) -> tuple[np.ndarray, np.ndarray]:
    """(integer weights as int8, scale per output channel or per tensor)."""
    qmax = 7 if spec.bits == 4 else 127
    qmin = -qmax if spec.bits == 8 or spec.narrow else -8
    peak = np.abs(w).reshape(w.shape[0], -1).max(axis=1) if spec.per_channel else np.abs(w).max()
    scale = np.maximum(np.asarray(peak, np.float32) / qmax, 1e-6).astype(np.float32)
    s = scale.reshape(-1, 1, 1, 1) if spec.per_channel else scale
    q = np.clip(np.round(w / s), qmin, qmax).astype(np.int8)
    return q, scale.reshape(-1) if spec.per_channel else scale.reshape(())


def _weight_tensor(name: str, q: np.ndarray, bits: int) -> onnx.TensorProto:
    if bits == 4:
        return numpy_helper.from_array(q.astype(ml_dtypes.int4), name)
    return numpy_helper.from_array(q, name)


class _Builder:
    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []

    def init(self, tensor: onnx.TensorProto) -> str:
        self.inits.append(tensor)
        return tensor.name

    def node(self, op: str, inputs: list[str], output: str, **attrs) -> str:
        self.nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    def act_qdq(self, x: str, tag: str, scale: float, zp: int, out: str | None = None) -> str:
        s = self.init(numpy_helper.from_array(np.float32(scale), f"{tag}_s"))
        z = self.init(numpy_helper.from_array(np.int8(zp), f"{tag}_zp"))
        q = self.node("QuantizeLinear", [x, s, z], f"{tag}_q")
        return self.node("DequantizeLinear", [q, s, z], out or f"{tag}_dq")


def _calibrate(y: torch.Tensor, relu: bool) -> tuple[float, int]:
    if relu:
        return max(float(y.max()), 1e-3) / 255.0, -128
    peak = max(float(y.abs().max()), 1e-3)
    return peak / 127.0, 0


def int4_conv_model(directory: Path, layers=MIXED, *, in_c: int = 4, size: int = 12,
                    seed: int = 0, name: str | None = None) -> Path:
    """A chain of quantized convolutions (`ConvSpec`s) on a (1, in_c, size, size) input.

    Returns the path of the written model (checked by ``onnx.checker``).
    """
    rng = np.random.default_rng(seed)
    b = _Builder(rng)
    x_float = torch.from_numpy(rng.normal(0, 1, (8, in_c, size, size)).astype(np.float32))
    s_x = float(x_float.abs().max()) / 127.0
    cur = b.act_qdq("input", "in", s_x, 0)
    c = in_c
    y = x_float
    inputs = []  # (tensor name, float value) entering each layer
    for i, spec in enumerate(layers):
        inputs.append((cur, y))
        groups = c if spec.kind == "dw" else 1
        out_c = c if spec.kind == "dw" else spec.out_c
        k = 1 if spec.kind == "pw" else spec.kernel
        w = rng.normal(0, 1.0 / np.sqrt(k * k * c / groups), (out_c, c // groups, k, k))
        q, s_w = _quantize_weights(w.astype(np.float32), spec)
        wq = b.init(_weight_tensor(f"w{i}", q, spec.bits))
        ws = b.init(numpy_helper.from_array(s_w, f"w{i}_s"))
        dq_inputs = [wq, ws]
        if spec.zero_point:
            zp = np.zeros(s_w.shape, np.int8)
            dq_inputs.append(b.init(_weight_tensor(f"w{i}_zp", zp, spec.bits)))
        w_dq = b.node("DequantizeLinear", dq_inputs, f"w{i}_dq",
                      **({"axis": 0} if spec.per_channel else {}))
        s_b = (np.float32(s_x) * s_w.reshape(-1)).astype(np.float32)
        bias_f = rng.normal(0, 0.1, out_c).astype(np.float32)
        qb = np.round(bias_f / np.broadcast_to(s_b, (out_c,))).astype(np.int32)
        bq = b.init(numpy_helper.from_array(qb, f"b{i}"))
        bs = b.init(numpy_helper.from_array(s_b if s_b.size > 1 else s_b.reshape(()),
                                            f"b{i}_s"))
        b_dq = b.node("DequantizeLinear", [bq, bs], f"b{i}_dq",
                      **({"axis": 0} if s_b.size > 1 else {}))
        pad = k // 2
        conv = b.node("Conv", [cur, w_dq, b_dq], f"conv{i}", kernel_shape=[k, k],
                      strides=[spec.stride] * 2, pads=[pad] * 4, group=groups)
        w_real = torch.from_numpy(q.astype(np.float32) * (
            s_w.reshape(-1, 1, 1, 1) if s_w.size > 1 else s_w))
        b_real = torch.from_numpy(qb.astype(np.float32) * s_b)
        y = torch.nn.functional.conv2d(y, w_real, b_real, stride=spec.stride, padding=pad,
                                       groups=groups)
        if spec.relu:
            conv = b.node("Relu", [conv], f"relu{i}")
            y = torch.relu(y)
        last = "output" if i == len(layers) - 1 else None
        s_x, zp = _calibrate(y, spec.relu)
        cur = b.act_qdq(conv, f"a{i}", s_x, zp, None if spec.residual else last)
        if spec.residual:
            skip, y_skip = inputs[i + 1 - spec.residual]
            y = y + y_skip
            s_x, zp = _calibrate(y, False)
            cur = b.act_qdq(b.node("Add", [cur, skip], f"add{i}"), f"r{i}", s_x, zp, last)
        c = out_c
    out_shape = [1, c, *y.shape[2:]]
    graph = helper.make_graph(
        b.nodes, "int4_convs",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, in_c, size, size])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, out_shape)], b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    model.ir_version = 10
    onnx.checker.check_model(model, full_check=True)
    path = Path(directory) / (name or f"int4_convs_{seed}.onnx")
    onnx.save(model, path)
    return path


def sample_input(path: Path, seed: int = 1) -> np.ndarray:
    """A float input of the model's (static) input shape."""
    model = onnx.load(path)
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    return np.random.default_rng(seed).normal(0, 1, dims).astype(np.float32)
