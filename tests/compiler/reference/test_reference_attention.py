"""NumPy int8 reference for attention: TFLite Micro's integer softmax, activation matmuls, Slice.

References: the float softmax (the fixed-point probabilities), onnxruntime on one-op
QDQ models with random inputs and scales (within 1 LSB, per op), and onnxruntime on
a whole `efficient-topformer` subnet exported by the Brevitas flow.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto

from compiler.reference import boundary, run_int8_reference
from compiler.reference.softmax import exp_on_negative_values, softmax_probabilities
from tests.support.firmware_util import export_subnet
from tests.support.int8_checks import agreement, full_range_inputs, onnxruntime_int8
from tests.support.onnx_models import _one_op_model


def test_fixed_point_exp_and_softmax_match_float():
    a = np.arange(-(32 << 26) + 1, 1, 1 << 18)
    assert np.abs(exp_on_negative_values(a) / 2**31 - np.exp(a / 2**26)).max() < 1e-6
    rng = np.random.default_rng(0)
    for _ in range(50):
        scale, n = float(rng.uniform(0.005, 0.5)), int(rng.integers(2, 80))
        q = rng.integers(-128, 128, (4, n))
        raw, bits = softmax_probabilities(q, scale)
        p = np.exp((q - q.max(-1, keepdims=True)) * scale)
        p /= p.sum(-1, keepdims=True)
        assert np.abs(raw / 2.0 ** (31 + bits) - p).max() < 2e-5


@pytest.mark.parametrize("seed", range(6))
def test_softmax_within_one_lsb_of_onnxruntime(seed):
    rng = np.random.default_rng(seed)
    shape = [1, 4, int(rng.integers(2, 40)), int(rng.integers(2, 70))]
    uint8 = seed % 2 == 0  # our flow's calibrated uint8 output, or TFLite's int8 1/256
    model = _one_op_model("Softmax", [shape], shape, [float(rng.uniform(0.01, 0.4))],
                          1 / 255 if uint8 else 1 / 256, 0 if uint8 else -128,
                          TensorProto.UINT8 if uint8 else TensorProto.INT8, axis=-1)
    feeds = full_range_inputs(model, rng)
    ours = run_int8_reference(model, feeds)["out"]
    # onnxruntime's float32 path (optimizations off): the reference semantics of the QDQ op
    exact, worst = agreement(ours, onnxruntime_int8(model, feeds, optimized=False)["out"])
    assert worst <= 1 and exact >= 0.99, (exact, worst)
    # optimized, onnxruntime fuses DQ-Softmax-Q into its own table kernel (QLinearSoftmax),
    # a fraction of an LSB coarser than the fixed-point exp: still within one LSB
    assert agreement(ours, onnxruntime_int8(model, feeds)["out"])[1] <= 1


def test_activation_matmul_within_one_lsb_of_onnxruntime():
    rng = np.random.default_rng(3)
    model = _one_op_model("MatMul", [[1, 4, 9, 16], [1, 4, 16, 9]], [1, 4, 9, 9],
                          [0.05, 0.03], 0.9, 3, TensorProto.INT8)
    feeds = full_range_inputs(model, rng)
    exact, worst = agreement(run_int8_reference(model, feeds)["out"],
                             onnxruntime_int8(model, feeds)["out"])
    assert worst <= 1 and exact >= 0.99


@pytest.mark.slow
def test_topformer_subnet_reference_matches_onnxruntime(tmp_path):
    model = onnx.load(str(export_subnet("efficient-topformer", "min", tmp_path / "m.onnx",
                                        size=(64, 64), num_classes=4)))
    spec = boundary(model)
    rng = np.random.default_rng(0)
    feeds = {t.name: rng.integers(-128, 128, size=t.shape).astype(np.int8) for t in spec.inputs}
    ours, ort = run_int8_reference(model, feeds), onnxruntime_int8(model, feeds, optimized=False)
    exact, worst = agreement(next(iter(ours.values())), next(iter(ort.values())))
    print(f"efficient-topformer min: reference vs onnxruntime {exact:.4%} exact, {worst} LSB max")
    assert worst <= 1 and exact >= 0.99
