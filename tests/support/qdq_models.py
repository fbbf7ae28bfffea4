"""Builders of tiny ONNX models (float and QDQ int8) and helpers to run and compare them.

Shared by the frontend/pass tests and the code generator's tests. Every builder
takes a directory and a seed and returns the path of the ``.onnx`` file it wrote.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from compiler import int8


def _calibrate(model: nn.Module, shape, gen: torch.Generator) -> None:
    from brevitas.graph.calibrate import calibration_mode

    with torch.no_grad(), calibration_mode(model):
        for _ in range(4):
            model(torch.randn(*shape, generator=gen))


def _export_qcdq(model: nn.Module, shape, path: Path, seed: int) -> Path:
    from brevitas.export import export_onnx_qcdq

    gen = torch.Generator().manual_seed(seed)
    model.eval()
    _calibrate(model, shape, gen)
    export_onnx_qcdq(model, args=torch.randn(*shape, generator=gen), export_path=str(path),
                     dynamo=False)
    return path


class _ConvNet(nn.Module):
    def __init__(self, in_ch, out_ch, kernel, stride, padding, dilation, groups, per_channel,
                 act, bias):
        super().__init__()
        import brevitas.nn as qnn
        from brevitas.quant import Int8WeightPerChannelFloat, Int8WeightPerTensorFloat, Int32Bias

        self.inp = qnn.QuantIdentity(return_quant_tensor=True)
        self.conv = qnn.QuantConv2d(
            in_ch, out_ch, kernel, stride=stride, padding=padding, dilation=dilation,
            groups=groups, bias=bias, bias_quant=Int32Bias if bias else None,
            weight_quant=Int8WeightPerChannelFloat if per_channel else Int8WeightPerTensorFloat,
            return_quant_tensor=True)
        self.act = {"relu": qnn.QuantReLU(return_quant_tensor=False),
                    "none": qnn.QuantIdentity(return_quant_tensor=False)}[act]

    def forward(self, x):
        return self.act(self.conv(self.inp(x)))


def brevitas_conv_model(directory: Path, *, in_ch: int = 8, out_ch: int = 8, kernel: int = 3,
                        stride: int = 1, padding: int = 1, dilation: int = 1, groups: int = 1,
                        per_channel: bool = True, act: str = "relu", bias: bool = True,
                        size: int = 16, seed: int = 0) -> Path:
    """QuantIdentity → QuantConv2d (int8 weights, int32 bias) → QuantReLU/QuantIdentity."""
    torch.manual_seed(seed)
    net = _ConvNet(in_ch, out_ch, kernel, stride, padding, dilation, groups, per_channel, act,
                   bias)
    name = f"conv_k{kernel}s{stride}p{padding}d{dilation}g{groups}_{act}_{seed}.onnx"
    return _export_qcdq(net, (1, in_ch, size, size), Path(directory) / name, seed)


class _BlockNet(nn.Module):
    """The NAS subnet patterns: inverted residual, ReLU6, depthwise dilated conv, residual
    add with a shared quantizer, concat, avg-pool, bilinear upsample, hard-swish and an
    LR-ASPP style AdaptiveAvgPool(1) + Sigmoid gate."""

    def __init__(self, ch: int = 8):
        super().__init__()
        import brevitas.nn as qnn
        from brevitas.quant import Int8ActPerTensorFloat, Int8WeightPerChannelFloat, Int32Bias

        def conv(cin, cout, k, **kw):
            return qnn.QuantConv2d(cin, cout, k, padding=kw.pop("padding", k // 2),
                                   weight_quant=Int8WeightPerChannelFloat, bias_quant=Int32Bias,
                                   return_quant_tensor=True, **kw)

        self.inp = qnn.QuantIdentity(return_quant_tensor=True)
        self.expand = conv(ch, 2 * ch, 1)
        self.relu6 = qnn.QuantReLU(max_val=6.0, return_quant_tensor=True)
        self.dw = conv(2 * ch, 2 * ch, 3, groups=2 * ch, dilation=2, padding=2)
        self.relu = qnn.QuantReLU(return_quant_tensor=True)
        self.project = conv(2 * ch, ch, 1)
        self.proj_q = qnn.QuantIdentity(return_quant_tensor=True)
        self.add_q = self.proj_q  # shared quantizer for both residual operands
        self.sum_q = qnn.QuantIdentity(return_quant_tensor=False)
        self.pool = nn.AvgPool2d(2)
        self.pool_q = qnn.QuantIdentity(return_quant_tensor=True)
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.up_q = qnn.QuantIdentity(return_quant_tensor=False)
        self.cat_q = qnn.QuantIdentity(return_quant_tensor=True)
        self.hswish = nn.Hardswish()
        self.hs_q = qnn.QuantIdentity(return_quant_tensor=False)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.gap_q = qnn.QuantIdentity(return_quant_tensor=True)
        self.gate = conv(2 * ch, 2 * ch, 1, padding=0, output_quant=Int8ActPerTensorFloat)
        self.sig = nn.Sigmoid()
        self.sig_q = qnn.QuantIdentity(return_quant_tensor=False)
        self.out_q = qnn.QuantIdentity(return_quant_tensor=False)

    def forward(self, x):
        x = self.inp(x)
        y = self.project(self.relu(self.dw(self.relu6(self.expand(x)))))
        y = self.sum_q(self.add_q(y) + self.add_q(x))
        z = self.up_q(self.up(self.pool_q(self.pool(y))))
        c = self.cat_q(torch.cat([y, z], dim=1))
        h = self.hs_q(self.hswish(c))
        g = self.sig_q(self.sig(self.gate(self.gap_q(self.gap(h)))))
        return self.out_q(h * g)


def brevitas_block_model(directory: Path, *, ch: int = 8, size: int = 16, seed: int = 0) -> Path:
    """A QCDQ model exercising every pattern the NAS subnets export (see `_BlockNet`)."""
    torch.manual_seed(seed)
    return _export_qcdq(_BlockNet(ch), (1, ch, size, size),
                        Path(directory) / f"block_{seed}.onnx", seed)


class _FloatNet(nn.Module):
    def __init__(self, ch: int = 8):
        super().__init__()
        self.conv1 = nn.Conv2d(ch, 2 * ch, 3, padding=1)
        self.dw = nn.Conv2d(2 * ch, 2 * ch, 3, padding=1, groups=2 * ch)
        self.conv2 = nn.Conv2d(2 * ch, ch, 1)
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(ch * 4, 10)

    def forward(self, x):
        y = torch.relu(self.conv1(x))
        y = torch.clamp(self.dw(y), 0.0, 6.0)
        y = self.conv2(y) + x
        y = self.pool(y)
        y = nn.functional.adaptive_avg_pool2d(y, 2)
        return self.fc(torch.flatten(y, 1))


def float_torch_model(ch: int = 8, seed: int = 0) -> nn.Module:
    """A small float CNN (conv, depthwise, ReLU/ReLU6, residual, max-pool, linear)."""
    torch.manual_seed(seed)
    return _FloatNet(ch).eval()


def float_onnx_model(directory: Path, *, ch: int = 8, size: int = 16, seed: int = 0) -> Path:
    """`float_torch_model` exported to ONNX (opset 13, static shapes)."""
    path = Path(directory) / f"float_{seed}.onnx"
    x = torch.randn(1, ch, size, size, generator=torch.Generator().manual_seed(seed))
    torch.onnx.export(float_torch_model(ch, seed), (x,), str(path), opset_version=13,
                      dynamo=False, input_names=["x"], output_names=["y"])
    return path


def ort_quantized_model(directory: Path, *, ch: int = 8, size: int = 16, seed: int = 0) -> Path:
    """`float_onnx_model` quantized by onnxruntime (QDQ, per-channel weights, int8)."""
    from onnxruntime.quantization import (
        CalibrationDataReader,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    src = float_onnx_model(directory, ch=ch, size=size, seed=seed)
    rng = np.random.default_rng(seed)

    class _Reader(CalibrationDataReader):
        def __init__(self):
            self.batches = iter([{"x": rng.standard_normal((1, ch, size, size), np.float32)}
                                 for _ in range(4)])

        def get_next(self):
            return next(self.batches, None)

    dst = Path(directory) / f"ort_qdq_{seed}.onnx"
    quantize_static(str(src), str(dst), _Reader(), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8)
    return dst


def run_onnxruntime(path: Path, x: np.ndarray, optimized: bool = True) -> np.ndarray:
    """The model's first output computed by onnxruntime (graph optimizations on or off)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if not optimized:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: x})[0]


def relax_function(mod) -> Callable[..., np.ndarray]:
    """Builds ``mod`` once for the host CPU (llvm); the function returned runs ``main`` on
    the TVM VM (build once, run on several inputs: the build is what takes the time)."""
    import tvm
    from tvm import relax

    vm = relax.VirtualMachine(tvm.compile(mod, target="llvm"), tvm.cpu())
    return lambda *args: vm["main"](*(tvm.runtime.tensor(a) for a in args)).numpy()


def run_relax(mod, *args: np.ndarray) -> np.ndarray:
    """Builds ``mod`` for the host CPU (llvm) and runs ``main`` on the TVM VM."""
    return relax_function(mod)(*args)


def int8_agreement(ours: np.ndarray, reference_float: np.ndarray, scale: float,
                   zero_point: int) -> tuple[float, int]:
    """``(fraction of bit-exact elements, max |difference| in LSB)`` of int8 outputs.

    ``reference_float`` is a dequantized output (as onnxruntime returns it); it is
    re-quantized exactly with the output's scale and zero point first.
    """
    ref = int8.quantize(reference_float, scale, zero_point).astype(np.int32)
    diff = np.abs(ours.astype(np.int32) - ref)
    return float((diff == 0).mean()), int(diff.max())
