"""Errors of `qanas.quant`: a model that cannot be quantized or exported as asked."""

from __future__ import annotations

from qanas.errors import QanasError


class QuantizationError(QanasError, RuntimeError):
    """A model or spec that the Brevitas int8 flow cannot handle (the message says why)."""


class ExportError(QuantizationError):
    """The ONNX QDQ export failed or produced a graph onnxruntime cannot run."""
