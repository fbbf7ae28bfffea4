"""Inputs and comparisons for int8 results: full-range inputs, the
agreement of two outputs, onnxruntime's int8 run."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort

from compiler import int8
from compiler.reference import boundary


def full_range_inputs(model, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Uniform int8 over [-128, 127] for every boundary input of ``model``."""
    return {t.name: rng.integers(-128, 128, size=t.shape).astype(np.int8)
            for t in boundary(model).inputs}


def agreement(ours: np.ndarray, ref: np.ndarray) -> tuple[float, int]:
    """``(bit-exact share, max |difference| in LSB)`` of two int8 tensors."""
    diff = np.abs(np.asarray(ours).astype(np.int64).reshape(ref.shape) - ref.astype(np.int64))
    return float((diff == 0).mean()), int(diff.max())


def onnxruntime_int8(model, feeds_q: dict, optimized: bool = True) -> dict[str, np.ndarray]:
    """onnxruntime on the dequantized int8 inputs; outputs re-quantized to int8 exactly."""
    spec = boundary(model)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if not optimized:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = ort.InferenceSession(model.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])
    feeds = {t.name: int8.dequantize(feeds_q[t.name], t.scale, t.zero_point)
             for t in spec.inputs}
    names = [t.name for t in spec.outputs]
    return {t.name: int8.quantize(y, t.scale, t.zero_point)
            for t, y in zip(spec.outputs, sess.run(names, feeds), strict=True)}
