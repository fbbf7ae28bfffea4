"""Seconds per subnet of the search's SRAM figure (plan-only mode), and its exactness.

For random subnets of each space at one image size, the search's path
(`qanas.search.sram.CompiledSramModel`: the in-memory QDQ graph of
`SubnetExporter.qdq_model`, then `compiler.plan_only.plan_model_memory` with a scratch
cache) is timed per subnet, split into building the graph and planning it:

* ``cold``: the first subnet of a fresh process with an empty scratch cache (imports
  excluded, reported apart);
* ``warm``: the median of the following subnets in the same process (the in-process
  scratch cache and legalization memo, `compiler.legalize_memo`, have met the first
  ones' kernels and calls);
* ``warm disk``: the median of the same subnets again in a new `CompiledSramModel` whose
  only cache is the file the first pass wrote (a resumed search or a new process: its
  legalization memo starts empty).

The path it replaces (Brevitas's exporter to a file, then plan-only) is timed on the
first `--check` subnets, and for those the arena, the whole `MemoryReport` and the graph
(`qanas.search.subnet_qdq.graph_signature`) are compared with `compile_model` on
Brevitas's export: both must be equal.

    .venv/bin/python benchmarks/plan_only_speed.py --spaces squeezenas-small:10,mbv2-deeplab:3 \\
        --check 2 --json benchmarks/results/plan_only_speed.json
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

_T0 = time.perf_counter()
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import onnx  # noqa: E402

from compiler.driver import compile_model  # noqa: E402
from compiler.legalize_memo import LegalizeMemo  # noqa: E402
from compiler.plan_only import plan_model_memory  # noqa: E402
from compiler.scratch_store import PersistentScratchCache  # noqa: E402
from qanas.search.sram import CompiledSramModel  # noqa: E402
from qanas.search.subnet_export import SubnetExporter  # noqa: E402
from qanas.search.subnet_qdq import graph_signature  # noqa: E402
from qanas.space import get_space  # noqa: E402
from targets import get_target  # noqa: E402

IMPORT_SECONDS = time.perf_counter() - _T0


def _timed_report(sram: CompiledSramModel, cfg, memo: LegalizeMemo) -> tuple[float, float, object]:
    """(graph seconds, plan seconds, report) of one subnet, outside the model's own cache."""
    t0 = time.perf_counter()
    graph = sram.exporter.qdq_model(cfg)
    t1 = time.perf_counter()
    report = plan_model_memory(graph, sram.target, sram.options, sram.scratch_cache,
                               measure_unfused=False, legalize_memo=memo)
    return t1 - t0, time.perf_counter() - t1, report


def _check(exporter: SubnetExporter, sram: CompiledSramModel, cfg, fast_report) -> dict:
    """Brevitas export + plan-only timing, and equality with the compiled arena."""
    with tempfile.TemporaryDirectory(prefix="qanas-speed-") as tmp:
        t0 = time.perf_counter()
        path = exporter.export_onnx(cfg, tmp)
        t1 = time.perf_counter()
        old = plan_model_memory(path, sram.target, sram.options, measure_unfused=False)
        t2 = time.perf_counter()
        compiled = compile_model(path, sram.target, Path(tmp) / "project",
                                 optimise=sram.options.optimise, output=sram.options.output)
        same_graph = graph_signature(onnx.load(str(path))) == graph_signature(
            exporter.qdq_model(cfg))
    compiled_report = compiled.report
    return {"brevitas_export_s": round(t1 - t0, 3), "plan_s_uncached": round(t2 - t1, 3),
            "compiled_arena_bytes": compiled.arena_bytes,
            "arena_equal": fast_report.arena_bytes == compiled.arena_bytes == old.arena_bytes,
            "report_equal": (fast_report.arena_bytes, fast_report.lower_bound_bytes,
                             fast_report.workspace_bytes, fast_report.num_kernels)
            == (compiled_report.arena_bytes, compiled_report.lower_bound_bytes,
                compiled_report.workspace_bytes, compiled_report.num_kernels),
            "graph_equal": same_graph}


def bench_space(name: str, count: int, size, classes: int, target, check: int,
                seed: int, cache_dir: Path) -> dict:
    """Times `count` subnets of space `name` (min, max, then random) and checks `check`."""
    space = get_space(name)
    rng = np.random.default_rng(seed)
    configs = [space.resolve("min"), space.resolve("max")]
    configs += [space.sample(rng) for _ in range(max(0, count - 2))]
    configs = configs[:count]
    exporter = SubnetExporter(space, size, classes, seed)
    sram = CompiledSramModel(space, target, size, classes, exporter=exporter,
                             scratch_cache=PersistentScratchCache(cache_dir / name))
    rows = []
    memo = LegalizeMemo()  # this pass's process memory, empty at the first subnet
    for i, cfg in enumerate(configs):
        graph_s, plan_s, report = _timed_report(sram, cfg, memo)
        row = {"arch": cfg.to_str(), "graph_s": round(graph_s, 3), "plan_s": round(plan_s, 3),
               "total_s": round(graph_s + plan_s, 3), "arena_bytes": report.arena_bytes,
               "fallback": exporter.fallbacks.get(cfg.to_str())}
        if i < check:
            row.update(_check(exporter, sram, cfg, report))
        rows.append(row)
        print(f"{name} {i + 1}/{len(configs)} graph {graph_s:.2f}s plan {plan_s:.2f}s "
              f"arena {report.arena_bytes:,} B" + (f" compiled {row['compiled_arena_bytes']:,} B "
                                                   f"equal={row['arena_equal']}"
                                                   if i < check else ""), file=sys.stderr)
    disk = CompiledSramModel(space, target, size, classes, exporter=exporter,
                             scratch_cache=PersistentScratchCache(cache_dir / name))
    disk_memo = LegalizeMemo()  # a new process: only the scratch file is warm
    again = [_timed_report(disk, cfg, disk_memo) for cfg in configs]
    warm = [r["total_s"] for r in rows[1:]] or [rows[0]["total_s"]]
    return {
        "space": name, "subnets": len(rows),
        "cold_s": rows[0]["total_s"],
        "warm_median_s": round(statistics.median(warm), 3),
        "warm_median_graph_s": round(statistics.median(r["graph_s"] for r in rows[1:] or rows), 3),
        "warm_median_plan_s": round(statistics.median(r["plan_s"] for r in rows[1:] or rows), 3),
        "warm_disk_median_s": round(statistics.median(g + p for g, p, _ in again), 3),
        "legalize_memo_hits": memo.hits, "legalize_memo_misses": memo.misses,
        "distinct_arenas": len({r["arena_bytes"] for r in rows}),
        "all_checked_equal": all(r.get("arena_equal", True) and r.get("report_equal", True)
                                 and r.get("graph_equal", True) for r in rows),
        "rows": rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaces", default="squeezenas-small:10,mbv2-deeplab:3",
                        help="space:count,... (min, max, then random subnets)")
    parser.add_argument("--size", default="64x128", help="HxW")
    parser.add_argument("--classes", type=int, default=6)
    parser.add_argument("--target", default="host")
    parser.add_argument("--check", type=int, default=2,
                        help="subnets per space also exported by Brevitas and compiled")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    size = tuple(int(v) for v in args.size.lower().split("x"))
    target = get_target(args.target)
    results = {"command": " ".join(["benchmarks/plan_only_speed.py", *(argv or sys.argv[1:])]),
               "import_s": round(IMPORT_SECONDS, 2), "load_average": os.getloadavg(),
               "cpus": os.cpu_count(), "spaces": []}
    with tempfile.TemporaryDirectory(prefix="qanas-scratch-") as cache_dir:
        for item in args.spaces.split(","):
            name, _, count = item.partition(":")
            results["spaces"].append(bench_space(name, int(count or 10), size, args.classes,
                                                 target, args.check, args.seed, Path(cache_dir)))
    results["load_average_end"] = os.getloadavg()
    print(f"imports {results['import_s']} s; load average {results['load_average'][0]:.1f} "
          f"-> {results['load_average_end'][0]:.1f} on {results['cpus']} CPUs")
    print(f"{'space':18} {'n':>3} {'cold s':>7} {'warm s':>7} {'graph s':>8} {'plan s':>7} "
          f"{'disk s':>7} {'arenas':>6} exact")
    for s in results["spaces"]:
        print(f"{s['space']:18} {s['subnets']:>3} {s['cold_s']:>7.2f} {s['warm_median_s']:>7.2f} "
              f"{s['warm_median_graph_s']:>8.2f} {s['warm_median_plan_s']:>7.2f} "
              f"{s['warm_disk_median_s']:>7.2f} {s['distinct_arenas']:>6} "
              f"{s['all_checked_equal']}")
        for r in s["rows"]:
            if "brevitas_export_s" in r:
                print(f"  {r['arch'][:48]:48} before: export {r['brevitas_export_s']:.2f}s + "
                      f"plan {r['plan_s_uncached']:.2f}s; now {r['total_s']:.2f}s; arena "
                      f"{r['arena_bytes']:,} == compiled {r['compiled_arena_bytes']:,}: "
                      f"{r['arena_equal']}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0 if all(s["all_checked_equal"] for s in results["spaces"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
