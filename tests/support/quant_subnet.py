"""A seeded subnet of a space quantized, calibrated and exported as QDQ ONNX (test helper)."""

from __future__ import annotations

from pathlib import Path

import torch

from qanas.quant import QuantSpec, calibrate, export_qdq, quantize_model
from qanas.supernet import build_supernet


def export_quantized_subnet(space_name: str, which: str, path: Path, size: int = 64):
    """(quantized model, ONNX path, the two calibration batches) of `which` in `space_name`:
    a 4-class supernet seeded 0, calibrated on two seeded N(0, 1) batches of 2 images."""
    from qanas.space import get_space

    space = get_space(space_name)
    torch.manual_seed(0)
    subnet = build_supernet(space, 4).extract(space.resolve(which)).eval()
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randn(2, 3, size, size, generator=gen) for _ in range(2)]
    qmodel = quantize_model(subnet, QuantSpec(calibration_batches=2))
    calibrate(qmodel, batches)
    return qmodel, export_qdq(qmodel, batches[0][:1], path), batches
