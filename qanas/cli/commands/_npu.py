"""The Ethos-U branches of `qanas bench` and `qanas deploy` (NPU targets, Vela).

Kept apart from the CPU paths of those commands: an NPU target is compiled by Vela and
its figures are Vela's estimates, so `bench` reports them marked ``"estimate": true``
with the protocol (Vela version, accelerator, system config, memory mode, strategy),
and `deploy` writes a TFLite Micro bundle instead of a firmware ELF.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from qanas.errors import ConfigError

VELA_ESTIMATE_KIND = "vela-estimate"
"""Marker kind of a `qanas bench --target ethos-u… --out DIR` folder."""


def _work_dir(args: argparse.Namespace, prefix: str) -> Path:
    """``--out`` (new, empty, or with ``--force`` one that qanas bench marked), else a temp dir.

    Vela's output subfolder is replaced in place, so a folder qanas did not write is
    refused even with ``--force`` (`compiler.project.output_dir`).
    """
    if getattr(args, "out", None):
        from compiler.project.output_dir import prepare_output_dir

        return prepare_output_dir(args.out, args.force, VELA_ESTIMATE_KIND)
    return Path(tempfile.mkdtemp(prefix=prefix))


def _model_path(args: argparse.Namespace) -> Path:
    model = Path(args.model)
    if model.is_dir():
        raise ConfigError(f"{model} is a compiled C project; an NPU target ({args.target}) "
                          "needs the QDQ .onnx model (or an int8 .tflite) that Vela compiles")
    return model


def bench_npu(args: argparse.Namespace, target) -> dict:
    """`qanas bench --target ethos-u…`: Vela's estimates of the model, with unit and protocol."""
    from compiler.npu.flow import estimate

    model = _model_path(args)
    result = estimate(model, target, _work_dir(args, "qanas-bench-npu-"), args.optimise)
    r = result.report
    return {
        "target": target.name, "runner": "vela", "model": str(model), "estimate": True,
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


def deploy_npu(args: argparse.Namespace, target) -> dict:
    """`qanas deploy --target ethos-u…`: the Vela-optimised model + TFLM glue in ``--out``."""
    from compiler.npu.bundle import write_npu_bundle
    from compiler.npu.flow import as_tflite

    if not args.out:
        raise ConfigError(f"--out is required: the folder for the {target.name} bundle")
    model = _model_path(args)
    out = Path(args.out)
    with tempfile.TemporaryDirectory(prefix="qanas-deploy-npu-") as tmp:
        tflite = as_tflite(model, tmp)
        bundle = write_npu_bundle(tflite, target, out, args.optimise, force=args.force)
    r = bundle.report
    return {"target": target.name, "bundle_dir": str(bundle.out_dir),
            "files": sorted(p.name for p in bundle.out_dir.iterdir()),
            "arena_bytes": bundle.arena_bytes, "fast_memory_bytes": bundle.fast_memory_bytes,
            "flash_bytes": r.model_bytes, "cpu_ops": list(bundle.model.cpu_ops),
            "cpu_fallback": [c.to_dict() for c in r.cpu_fallback], "estimate": True,
            "vela": r.to_dict(),
            "not_built_here": "qanas_npu.cc and the final link need TFLite Micro and the "
                              "Ethos-U core driver from your board SDK (see README.md)"}
