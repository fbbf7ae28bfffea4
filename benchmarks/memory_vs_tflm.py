"""Our arena per `--optimise` mode against TFLite Micro's and Vela's, for every search space.

For each space's ``seed``, ``min`` and ``max`` subnet at each image size (6 classes,
seeded random weights, Brevitas calibration on seeded random batches:
`qanas.cost.subnet_export.SubnetExporter`), the subnet is exported once to QDQ ONNX
and int8 TFLite (`compiler.tflite.export_tflite`, the same int8 graph), then:

* **ours**: `compiler.plan_only.plan_model_memory` for the host target in ``size`` and
  ``speed`` mode (the compiled arena byte for byte, `tests/compiler/test_plan_only.py`), and
  ``size`` with ``--output argmax``; with the layer-wise bound of the unfused graph, the
  bound of the chosen schedule, the techniques and the extra MACs (also as a share of the
  subnet's MACs, `layer_specs`), and the plan-only time (export excluded);
* **patches**: where patch-based execution applied in ``size`` mode, its patch count per
  side, split tensor and extra MACs (``patches`` in the JSON, None where it did not);
* **TFLite Micro**: the smallest ``arena_size`` with which the TFLite Micro Python
  interpreter (`tflite-micro`, reference kernels) allocates and invokes the model, found
  by binary search to 16 bytes; each probe runs in a subprocess, because TFLite Micro
  aborts the process when the arena is too small;
* **Vela**: ``--optimise Size`` SRAM use for ``ethos-u55-128`` (`compiler.npu.run_vela`);
* **ratios**: ours (``size``) / TFLite Micro and ours / Vela.

Every space's seed/min/max at both sizes (30 subnets) is the default run:

    .venv/bin/python benchmarks/memory_vs_tflm.py --out benchmarks/results/memory_vs_tflm.json

``--spaces``, ``--which``, ``--sizes`` select a subset; the JSON is rewritten after each
subnet, so an interrupted run keeps what it measured. On the shared 2-core machine one
subnet took 3-10 minutes, so the committed results are these subsets (each file records
its command):

    .venv/bin/python benchmarks/memory_vs_tflm.py --spaces squeezenas-small mbv2-deeplab \
        --sizes 64x128 --out benchmarks/results/memory_vs_tflm_64x128.json
    .venv/bin/python benchmarks/memory_vs_tflm.py --spaces squeezenas-small \
        --sizes 128x256 --out benchmarks/results/memory_vs_tflm_128x256.json
    .venv/bin/python benchmarks/memory_vs_tflm.py --spaces fmas-mbv2 squeezenas-large \
        squeezenas-xlarge --which seed --sizes 64x128 \
        --out benchmarks/results/memory_vs_tflm_64x128_other_spaces.json

(the last run was stopped at the deadline before squeezenas-xlarge finished: its file holds
fmas-mbv2 and squeezenas-large.)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NUM_CLASSES = 6
ALIGN = 16


def tflm_runs(tflite: Path, arena: int) -> bool:
    """Whether TFLite Micro allocates and invokes `tflite` in an `arena`-byte arena
    (a subprocess: TFLite Micro aborts on a too-small arena)."""
    proc = subprocess.run([sys.executable, __file__, "--probe", str(tflite), str(arena)],
                          capture_output=True, text=True, timeout=600)
    return proc.returncode == 0


def tflm_smallest_arena(tflite: Path, start: int) -> int:
    """The smallest working TFLite Micro arena (to `ALIGN` bytes), by binary search."""
    hi = max(start, 4096)
    while not tflm_runs(tflite, hi):
        hi *= 2
    lo = 0
    while hi - lo > ALIGN:
        mid = (lo + hi) // 2 // ALIGN * ALIGN
        if mid <= lo:
            break
        if tflm_runs(tflite, mid):
            hi = mid
        else:
            lo = mid
    return hi


def _probe(tflite: str, arena: int) -> int:
    import numpy as np
    from tflite_micro.python.tflite_micro import runtime

    it = runtime.Interpreter.from_file(tflite, arena_size=arena)
    detail = it.get_input_details(0)
    it.set_input(np.zeros(detail["shape"], detail["dtype"]), 0)
    it.invoke()
    return 0


def patch_column(techniques: list[dict], macs: int) -> dict | None:
    """The ``patches`` technique of a ``size`` plan: its kernel, patch count per side,
    split tensor (C, H, W) and extra MACs (also as a share of the subnet's); None when
    patches did not apply."""
    use = next((t for t in techniques if t["technique"] == "patches"), None)
    if use is None:
        return None
    kernel = use["where"][0]
    _, n, split = kernel.split("_")[:3]
    return {"kernel": kernel, "n": int(n[1:]), "split": [int(v) for v in split.split("x")],
            "extra_macs": use["extra_macs"],
            "extra_macs_share": use["extra_macs"] / macs if macs else 0.0}


def measure(space_name: str, which: str, size: tuple[int, int], work: Path) -> dict:
    """Every figure of one subnet (see the module docstring)."""
    from compiler.npu import run_vela
    from compiler.pipeline import CompileOptions
    from compiler.plan_only import plan_model_memory
    from compiler.tflite import export_tflite
    from qanas.cost.subnet_export import SubnetExporter
    from qanas.space import get_space
    from targets import get_target, total_macs

    space = get_space(space_name)
    cfg = space.resolve(which)
    folder = work / f"{space_name}-{which}-{size[0]}x{size[1]}"
    onnx_path = SubnetExporter(space, size, NUM_CLASSES).export_onnx(cfg, folder)
    tflite = Path(export_tflite(str(onnx_path), folder / "model.tflite").path)
    macs = total_macs(space.layer_specs(cfg, size, NUM_CLASSES))
    row = {"space": space_name, "which": which, "image_size": list(size),
           "arch": cfg.to_str(), "macs": macs}
    for label, options in (("size", CompileOptions(optimise="size")),
                           ("speed", CompileOptions(optimise="speed")),
                           ("size_argmax", CompileOptions(optimise="size", output="argmax"))):
        start = time.perf_counter()
        report = plan_model_memory(onnx_path, "host", options)
        row[label] = {**{k: v for k, v in report.to_dict().items()
                         if k not in ("target", "sram_bytes", "planner")},
                      "plan_only_s": round(time.perf_counter() - start, 2)}
    row["size"]["extra_macs_share"] = row["size"]["extra_macs"] / macs if macs else 0.0
    row["patches"] = patch_column(row["size"]["techniques"], macs)
    row["tflm_arena_bytes"] = tflm_smallest_arena(tflite, row["speed"]["unfused_bound_bytes"])
    vela = run_vela(tflite, get_target("ethos-u55-128"), folder / "vela", "Size")
    row["vela_size_sram_bytes"] = vela.report.sram_bytes
    ours = row["size"]["arena_bytes"]
    row["ratios"] = {"size_vs_tflm": ours / row["tflm_arena_bytes"],
                     "speed_vs_tflm": row["speed"]["arena_bytes"] / row["tflm_arena_bytes"],
                     "size_vs_vela": ours / row["vela_size_sram_bytes"]
                     if row["vela_size_sram_bytes"] else None,
                     "size_vs_unfused_bound": ours / row["size"]["unfused_bound_bytes"]}
    return row


def _line(r: dict) -> str:
    return (f"{r['space']:18s} {r['which']:5s} {r['image_size'][0]}x{r['image_size'][1]}: "
            f"size {r['size']['arena_bytes']:>9,} speed {r['speed']['arena_bytes']:>9,} "
            f"argmax {r['size_argmax']['arena_bytes']:>9,} unfused LB "
            f"{r['size']['unfused_bound_bytes']:>9,} TFLM {r['tflm_arena_bytes']:>9,} "
            f"Vela {r['vela_size_sram_bytes']:>9,}  size/TFLM "
            f"{r['ratios']['size_vs_tflm']:.3f}  extra MACs "
            f"{r['size']['extra_macs_share']:.1%}  patches {_patches(r.get('patches'))}  "
            f"plan-only {r['size']['plan_only_s']:.1f} s")


def _patches(column: dict | None) -> str:
    if column is None:
        return "-"
    return (f"{column['n']}x{column['n']} to {'x'.join(map(str, column['split']))} "
            f"({column['extra_macs_share']:+.1%} MACs)")


def main(argv: list[str] | None = None) -> int:
    """Runs the benchmark; prints one line per subnet and writes the JSON to --out."""
    from qanas.space import list_spaces
    from qanas.utils.io import versions

    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--spaces", nargs="+", default=list_spaces())
    p.add_argument("--which", nargs="+", default=["seed", "min", "max"])
    p.add_argument("--sizes", nargs="+", default=["64x128", "128x256"])
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args(argv)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes]
    rows = []
    with tempfile.TemporaryDirectory(prefix="qanas-mem-") as tmp:
        for size in sizes:
            for space in args.spaces:
                for which in args.which:
                    rows.append(measure(space, which, size, Path(tmp)))
                    print(_line(rows[-1]), flush=True)
                    if args.out is not None:
                        args.out.parent.mkdir(parents=True, exist_ok=True)
                        args.out.write_text(json.dumps(
                            {"command": " ".join(["benchmarks/memory_vs_tflm.py", *sys.argv[1:]]),
                             "num_classes": NUM_CLASSES, "versions": versions(),
                             "rows": rows}, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--probe":
        sys.exit(_probe(sys.argv[2], int(sys.argv[3])))
    sys.exit(main())
