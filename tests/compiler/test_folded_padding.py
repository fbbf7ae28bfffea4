"""Padding folded into the consumer: no ``pad`` kernel and no padded copy, bit-exact.

A Brevitas QDQ net whose convs and pools all read a ReLU output (uint8, so int8 with
zero point −128 after `CanonicalizeUint8`) through a padded window: a 3×3 conv, a
stride-2 depthwise, a dilated depthwise, an average pool that excludes the padding
and a max pool. Compiled for the host, its plan has one kernel per layer (the
requantize fused into it, no scratch), no buffer of a padded shape, and its outputs
equal the NumPy integer reference bit for bit and onnxruntime within 1 LSB.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from compiler import int8
from tests.support import qdq_models as qm

SHAPE = (1, 4, 12, 16)


class _PaddedNet(nn.Module):
    def __init__(self, ch: int = SHAPE[1]):
        super().__init__()
        import brevitas.nn as qnn
        from brevitas.quant import Int8WeightPerChannelFloat, Int32Bias

        def conv(cin, cout, k, **kw):
            return qnn.QuantConv2d(cin, cout, k, weight_quant=Int8WeightPerChannelFloat,
                                   bias_quant=Int32Bias, return_quant_tensor=True, **kw)

        self.inp = qnn.QuantIdentity(return_quant_tensor=True)
        self.conv = conv(ch, 2 * ch, 3, padding=1)
        self.relu1 = qnn.QuantReLU(return_quant_tensor=True)
        self.dw_s2 = conv(2 * ch, 2 * ch, 3, stride=2, padding=1, groups=2 * ch)
        self.relu2 = qnn.QuantReLU(return_quant_tensor=True)
        self.dw_dil = conv(2 * ch, 2 * ch, 3, padding=2, dilation=2, groups=2 * ch)
        self.relu3 = qnn.QuantReLU(return_quant_tensor=False)
        self.avg = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
        self.avg_q = qnn.QuantIdentity(return_quant_tensor=False)
        self.max = nn.MaxPool2d(3, stride=2, padding=1)
        self.out_q = qnn.QuantIdentity(return_quant_tensor=False)

    def forward(self, x):
        y = self.relu1(self.conv(self.inp(x)))
        y = self.relu3(self.dw_dil(self.relu2(self.dw_s2(y))))
        return self.out_q(self.max(self.avg_q(self.avg(y))))


@pytest.fixture(scope="module")
def compiled(tmp_path_factory):
    from compiler.driver import compile_model

    directory = tmp_path_factory.mktemp("padded")
    torch.manual_seed(0)
    path = qm._export_qcdq(_PaddedNet(), SHAPE, directory / "padded.onnx", seed=0)
    # padding folded into TVM's kernels is under test (the library reads zero-point
    # padding itself: tests/compiler/passes/test_offload_kernels.py)
    return path, compile_model(str(path), "host", directory / "project", library=False)


def test_no_pad_kernel_and_no_padded_buffer(compiled):
    _, result = compiled
    kernels = [c.kernel for c in result.plan.calls]
    assert not [k for k in kernels if k.startswith("pad")], kernels
    # five layers, five kernels: each conv / pool carries its requantize epilogue
    assert len(kernels) == 5, kernels
    assert all("cast" in k for k in kernels if "conv2d" in k), kernels
    # no tensor of a padded shape (H or W grown by the padding) anywhere in the plan
    padded = {(14, 18), (8, 10), (10, 12)}
    shapes = {tuple(b.shape[2:]) for b in result.plan.buffers.values() if len(b.shape) == 4}
    assert not shapes & padded, shapes
    assert all(k.workspace_bytes == 0 for k in result.kernels.values()), \
        {k: s.workspace_bytes for k, s in result.kernels.items()}


def test_folded_padding_is_bit_exact_with_the_reference_and_onnxruntime(compiled):
    from compiler.reference import run_int8_reference
    from tests.support.firmware_util import inputs_and_reference

    path, result = compiled
    inputs, ours = inputs_and_reference(result.out_dir)
    (name, x_q), = inputs.items()
    (out,) = ours.values()
    ref = run_int8_reference(str(path), {result.io["inputs"][0]["name"]: x_q})
    np.testing.assert_array_equal(out.reshape(-1), next(iter(ref.values())).reshape(-1))

    ins, outs = result.io["inputs"][0], result.io["outputs"][0]
    x = int8.dequantize(x_q, ins["scale"], ins["zero_point"]).astype(np.float32)
    exact, max_lsb = qm.int8_agreement(out.reshape(-1), qm.run_onnxruntime(path, x).reshape(-1),
                                       outs["scale"], outs["zero_point"])
    assert exact >= 0.99 and max_lsb <= 1, (exact, max_lsb)
