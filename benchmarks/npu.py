"""Ethos-U (Vela estimates) beside Cortex-M55 (QEMU instruction counts), same int8 models.

For a few subnets of one space (default: squeezenas-small min/seed/max at 64x128, 6
classes, seeded random weights calibrated on seeded random batches), each subnet is
exported once (Brevitas QDQ ONNX → int8 TFLite) and then:

* compiled by Vela for each NPU target with ``--optimise Performance`` and ``Size``:
  NPU cycles, total cycles, estimated latency, SRAM, model size, CPU-fallback operators;
* compiled by our compiler for ``cortex-m55`` and run under QEMU (mps3-an547,
  ``-icount shift=0``): instructions retired by one inference.

    python benchmarks/npu.py --out runs/bench-npu.json
    python benchmarks/npu.py --subnets seed --no-m55 --pruning   # + NPU-aware pruning

Prints one JSON object (also written to --out). The ratio ``m55_instructions_per_npu_cycle``
divides a count of CPU *instructions* by Vela's NPU *cycles*: different units from
different models (QEMU counts instructions, it does not time them; Vela estimates
cycles), so it says how much scalar/Helium work one NPU cycle replaces, not a speed-up.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def m55_instructions(onnx_path: Path, folder: Path, seed: int) -> dict:
    """Compiles `onnx_path` for cortex-m55 and counts one inference's instructions in QEMU."""
    from compiler.driver import compile_model
    from qanas.bench.runners import make_runner, random_inputs
    from runtime.runners.base import read_io
    from targets import get_target

    target = get_target("cortex-m55")
    project = compile_model(str(onnx_path), target, folder / "m55", force=True).out_dir
    specs, _ = read_io(project)
    inputs = {s.name: a for s, a in zip(specs, random_inputs(specs, seed), strict=True)}
    result = make_runner("qemu", target, warmup=0, per_layer=False).run(project, inputs,
                                                                        repeats=1)
    p = result.protocol
    return {"instructions": int(statistics.median(p["latency"])), "unit": p["unit"],
            "arena_bytes": (p.get("sram_bytes") or {}).get("arena"),
            "flash_bytes": p.get("flash_bytes"), "emulator": p.get("emulator")}


def vela_figures(tflite: Path, target_name: str, folder: Path) -> dict:
    """Vela's estimates for both optimisation strategies."""
    from compiler.npu import run_vela
    from targets import get_target

    out = {}
    for optimise in ("Performance", "Size"):
        r = run_vela(tflite, get_target(target_name), folder / f"{target_name}-{optimise}",
                     optimise).report
        out[optimise] = {"npu_cycles": r.npu_cycles, "total_cycles": r.total_cycles,
                         "latency_s": r.latency_s, "sram_bytes": r.sram_bytes,
                         "dram_bytes": r.dram_bytes, "model_bytes": r.model_bytes,
                         "cpu_ops": [c.op for c in r.cpu_fallback], "npu_ops": r.npu_ops}
    return out


def main(argv: list[str] | None = None) -> int:
    """Runs the comparison and prints the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="squeezenas-small")
    parser.add_argument("--subnets", default="min,seed,max", help="comma-separated: "
                        "min, seed, max, random:SEED or architecture strings")
    parser.add_argument("--image-size", type=int, nargs=2, default=(64, 128))
    parser.add_argument("--num-classes", type=int, default=6)
    parser.add_argument("--targets", default="ethos-u55-128",
                        help="comma-separated NPU targets (default ethos-u55-128)")
    parser.add_argument("--no-m55", action="store_true", help="skip the QEMU runs")
    parser.add_argument("--pruning", action="store_true",
                        help="also run the NPU-aware pruning of the space (first target)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", help="exports and projects (default: a temp dir)")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args(argv)

    import torch

    from compiler.npu import vela_version
    from qanas.cost.subnet_export import SubnetExporter
    from qanas.space import get_space
    from qanas.utils.io import atomic_write_json, versions

    torch.set_num_threads(max(1, int(os.environ.get("QANAS_THREADS", "1"))))
    space = get_space(args.space)
    size = tuple(args.image_size)
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="qanas-bench-npu-"))
    exporter = SubnetExporter(space, size, args.num_classes, args.seed)
    rows = []
    for which in args.subnets.split(","):
        cfg = space.resolve(which)
        folder = work / which.replace(":", "_")
        start = time.perf_counter()
        exported = exporter.export(cfg, folder)
        row = {"subnet": which, "arch": cfg.to_str(),
               "macs": sum(s.macs for s in space.layer_specs(cfg, size, args.num_classes)),
               "npu": {t: vela_figures(exported.tflite, t, folder)
                       for t in args.targets.split(",")}}
        if not args.no_m55:
            row["cortex_m55_qemu"] = m55_instructions(exported.onnx, folder, args.seed)
            first = row["npu"][args.targets.split(",")[0]]["Performance"]
            row["m55_instructions_per_npu_cycle"] = (
                row["cortex_m55_qemu"]["instructions"] / first["total_cycles"])
        row["seconds"] = round(time.perf_counter() - start, 1)
        _log(json.dumps({k: row[k] for k in ("subnet", "macs", "seconds")}))
        rows.append(row)
    pruning = None
    if args.pruning:
        from qanas.cost.vela import setup_npu_search
        from targets import get_target

        start = time.perf_counter()
        npu = setup_npu_search(space, get_target(args.targets.split(",")[0]), size,
                               args.num_classes, work / "pruning", seed=args.seed, log=_log)
        pruning = {**npu.summary(), "seconds": round(time.perf_counter() - start, 1)}
    result = {"space": space.name, "image_size": list(size), "num_classes": args.num_classes,
              "weights": f"seeded random (seed {args.seed}), Brevitas int8 calibration on 2 "
                         "seeded random batches",
              "protocol": {"npu": f"Vela {vela_version()} estimates (cycles, not measured)",
                           "cortex_m55": "instructions retired by one inference under QEMU "
                                         "mps3-an547 -icount shift=0 (our compiler's C)"},
              "versions": versions(), "subnets": rows,
              **({"npu_pruning": pruning} if pruning is not None else {})}
    if args.out:
        atomic_write_json(args.out, result)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
