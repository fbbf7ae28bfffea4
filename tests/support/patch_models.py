"""The conv heads of the patch-based execution tests and their inputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from tests.support.qdq_models import _export_qcdq


class _Head(nn.Module):
    """Stride-2 stem → inverted residual (stride 2) → inverted residual (stride 1, kernel
    `kernel`, `dilation`, residual add) → 1x1 conv: the high-resolution head sets the
    arena."""

    def __init__(self, kernel: int, dilation: int):
        super().__init__()
        import brevitas.nn as qnn
        from brevitas.quant import Int8WeightPerChannelFloat, Int32Bias

        def conv(cin, cout, k, **kw):
            return qnn.QuantConv2d(cin, cout, k, weight_quant=Int8WeightPerChannelFloat,
                                   bias_quant=Int32Bias, return_quant_tensor=True, **kw)

        def relu(max_val=None):
            return qnn.QuantReLU(return_quant_tensor=True,
                                 **({"max_val": max_val} if max_val else {}))

        self.inp = qnn.QuantIdentity(return_quant_tensor=True)
        self.stem = nn.Sequential(conv(3, 24, 3, stride=2, padding=1), relu())
        self.down = nn.Sequential(
            conv(24, 32, 1), relu(6.0), conv(32, 32, 3, stride=2, padding=1, groups=32),
            relu(), conv(32, 16, 1), qnn.QuantIdentity(return_quant_tensor=True))
        pad = dilation * (kernel - 1) // 2
        self.block = nn.Sequential(
            conv(16, 32, 1), relu(6.0),
            conv(32, 32, kernel, padding=pad, dilation=dilation, groups=32), relu(),
            conv(32, 16, 1))
        self.block_q = qnn.QuantIdentity(return_quant_tensor=True)
        self.sum_q = qnn.QuantIdentity(return_quant_tensor=True)
        self.tail = conv(16, 4, 1)
        self.out = qnn.QuantIdentity(return_quant_tensor=False)

    def forward(self, x):
        x = self.down(self.stem(self.inp(x)))
        x = self.sum_q(self.block_q(self.block(x)) + self.block_q(x))
        return self.out(self.tail(x))


#: name → (constructor arguments, input height, width)
CASES = {
    "k3_odd": (dict(kernel=3, dilation=1), 23, 37),
    "k5d2_even": (dict(kernel=5, dilation=2), 32, 40),
}


def export_case(name: str, directory: Path) -> Path:
    """The QCDQ ONNX of `CASES[name]`."""
    torch.manual_seed(0)
    kwargs, h, w = CASES[name]
    return _export_qcdq(_Head(**kwargs), (1, 3, h, w), directory / f"{name}.onnx", seed=0)


def _inputs(result, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {s["name"]: rng.integers(-128, 128, size=s["shape"]).astype(np.int8)
            for s in result.io["inputs"]}


def _patch_use(result) -> dict:
    (use,) = [t for t in result.summary()["techniques"] if t["technique"] == "patches"]
    return use
