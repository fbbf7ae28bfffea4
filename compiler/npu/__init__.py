"""Arm Ethos-U NPU backend: Vela compile + estimates, and the TFLite Micro deploy bundle.

Example:
    >>> from compiler.npu import run_vela
    >>> from targets import get_target
    >>> run_vela("model.tflite", get_target("ethos-u55-128"), "out").report.latency_s  # doctest: +SKIP
"""

from compiler.npu.bundle import NpuBundle, write_npu_bundle
from compiler.npu.flow import as_tflite, estimate
from compiler.npu.model_info import ModelInfo, TensorInfo, read_model_info
from compiler.npu.report import (
    CpuOp,
    LayerEstimate,
    VelaOutputError,
    VelaReport,
    parse_cpu_fallback,
    read_summary_csv,
)
from compiler.npu.vela import OPTIMISE, VelaError, VelaResult, npu_config_of, run_vela, vela_version

__all__ = [
    "OPTIMISE",
    "CpuOp",
    "LayerEstimate",
    "ModelInfo",
    "NpuBundle",
    "TensorInfo",
    "as_tflite",
    "estimate",
    "read_model_info",
    "write_npu_bundle",
    "VelaError",
    "VelaOutputError",
    "VelaReport",
    "VelaResult",
    "npu_config_of",
    "parse_cpu_fallback",
    "read_summary_csv",
    "run_vela",
    "vela_version",
]
