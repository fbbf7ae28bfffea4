"""Standalone quantization-aware training of an extracted subnet.

The subnet is BatchNorm-folded and quantized exactly as for deployment
(`qanas.quant.brevitas_quant.quantize_model`) and trained through Brevitas's
straight-through rounding; fake-quant inside a weight-sharing supernet is
`qanas.quant.qat` instead.
"""

from __future__ import annotations

from collections.abc import Iterable

from torch import nn

from qanas.quant.brevitas_quant import calibrate, quantize_model
from qanas.quant.spec import QuantSpec

__all__ = ["prepare_qat"]


def prepare_qat(static_model: nn.Module, spec: QuantSpec | None = None,
                calib_batches: Iterable | None = None) -> nn.Module:
    """Standalone QAT of an extracted subnet: its Brevitas fake-quant model, in train mode.

    The model is BatchNorm-folded and quantized exactly as for deployment
    (`quantize_model`); weights train through Brevitas's STE and activation
    scales are learned. Export the trained result with `export_qdq`.

    Args:
        static_model: an extracted subnet (not modified).
        spec: the quantization format.
        calib_batches: if given, activation ranges are calibrated on them first
            (recommended: scales then start from data, not from the first steps).

    Returns:
        The trainable fake-quant `GraphModule`.
    """
    qmodel = quantize_model(static_model, spec)
    if calib_batches is not None:
        calibrate(qmodel, calib_batches, max_batches=(spec or QuantSpec()).calibration_batches)
    return qmodel.train()
