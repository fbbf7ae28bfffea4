"""The Ethos-U branch of `qanas deploy` (NPU targets, Vela).

Kept apart from the CPU path of the command: an NPU target is compiled by Vela, and
`deploy` writes a TFLite Micro bundle instead of a firmware ELF. (The Ethos-U branch of
`qanas bench` is `qanas.bench.npu`.)
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from qanas.bench.npu import npu_model_path
from qanas.errors import ConfigError


def deploy_npu(args: argparse.Namespace, target) -> dict:
    """`qanas deploy --target ethos-u…`: the Vela-optimised model + TFLM glue in ``--out``."""
    from compiler.npu.bundle import write_npu_bundle
    from compiler.npu.flow import as_tflite

    if not args.out:
        raise ConfigError(f"--out is required: the folder for the {target.name} bundle")
    model = npu_model_path(args.model, args.target)
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
