"""The Ethos-U side of benchmarking: Vela's estimates of a model, with unit and protocol.

An NPU target is compiled by Vela and its figures are Vela's estimates, so `bench_npu`
reports them marked ``"estimate": true`` with the protocol (Vela version, accelerator,
system config, memory mode, strategy); nothing is executed.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from qanas.errors import ConfigError

VELA_ESTIMATE_KIND = "vela-estimate"
"""Marker kind of a `qanas bench --target ethos-u… --out DIR` folder."""


def work_dir(out: str | None, force: bool, prefix: str) -> Path:
    """`out` (new, empty, or with `force` one that qanas bench marked), else a temp dir.

    Vela's output subfolder is replaced in place, so a folder qanas did not write is
    refused even with `force` (`compiler.project.output_dir`).
    """
    if out:
        from compiler.project.output_dir import prepare_output_dir

        return prepare_output_dir(out, force, VELA_ESTIMATE_KIND)
    return Path(tempfile.mkdtemp(prefix=prefix))


def npu_model_path(model: str, target_name: str) -> Path:
    """`model` as the file Vela compiles; a compiled C project is refused with the fix."""
    path = Path(model)
    if path.is_dir():
        raise ConfigError(f"{path} is a compiled C project; an NPU target ({target_name}) "
                          "needs the QDQ .onnx model (or an int8 .tflite) that Vela compiles")
    return path


def bench_npu(model: str, target, out: str | None, force: bool, strategy: str) -> dict:
    """Vela's estimates of `model` on NPU `target` under Vela `strategy` (Size, Performance)."""
    from compiler.npu.flow import estimate

    path = npu_model_path(model, target.name)
    result = estimate(path, target, work_dir(out, force, "qanas-bench-npu-"), strategy)
    r = result.report
    return {
        "target": target.name, "runner": "vela", "model": str(path), "estimate": True,
        "latency": {"median": r.total_cycles, "min": r.total_cycles, "max": r.total_cycles,
                    "unit": "cycles"},
        "latency_s": r.latency_s, "cycles": {"npu": r.npu_cycles, "total": r.total_cycles},
        "runs": 0, "flash_bytes": r.model_bytes,
        "sram_bytes": {"arena": r.feature_map_bytes, "sram": r.sram_bytes,
                       "dram": r.dram_bytes, "stack_peak": None, "static": None},
        "weights_bytes": r.weights_bytes, "macs": r.macs,
        "npu_ops": r.npu_ops, "cpu_ops": r.cpu_ops, "cpu_op_share": r.cpu_op_share,
        "cpu_fallback": [c.to_dict() for c in r.cpu_fallback],
        "outputs_match": None, "reference": "none: Vela estimates, the model is not executed",
        "layers": [{"name": x.name, "op": x.op, "target": x.target, "value": x.cycles,
                    "unit": "cycles"} for x in r.layers],
        "protocol": {**r.protocol(), "unit": "cycles", "latency_s": "total_cycles / clock_hz",
                     "optimised_model": str(result.optimized_tflite),
                     "vela_log": str(result.log), "summary_csv": str(result.summary_csv)},
    }


__all__ = ["VELA_ESTIMATE_KIND", "bench_npu", "npu_model_path", "work_dir"]
