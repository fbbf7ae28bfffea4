"""qanas.quant: Brevitas int8 quantization, calibration, ONNX QDQ export and QAT, and the
lean quantized graph (`quantize_fast`) that scoring uses."""

from qanas.quant.brevitas_quant import calibrate, fold_batchnorm, quantize_model
from qanas.quant.errors import ExportError, QuantizationError
from qanas.quant.export import compare_with_onnx, export_qdq, float_compute_edges, run_onnx
from qanas.quant.quant_model import QuantGraphModel, quantize_fast
from qanas.quant.spec import QuantSpec

__all__ = [
    "ExportError",
    "QuantGraphModel",
    "QuantSpec",
    "QuantizationError",
    "calibrate",
    "compare_with_onnx",
    "export_qdq",
    "float_compute_edges",
    "fold_batchnorm",
    "quantize_fast",
    "quantize_model",
    "run_onnx",
]
