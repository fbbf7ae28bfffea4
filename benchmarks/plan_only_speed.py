"""CPU seconds per subnet of the search's SRAM figure (plan-only mode), per stage, and its exactness.

For subnets of each space at one image size (min, max, then random), the search's path
(`qanas.cost.sram.CompiledSramModel`: the in-memory QDQ graph of
`SubnetExporter.qdq_model`, then `compiler.plan_only.plan_model_memory` with a scratch
cache) is timed per subnet and per stage, in CPU seconds of the calling thread
(`compiler.stage_times`; the machine this runs on is shared, so wall time would measure
the other jobs): ``export`` (the QDQ graph), ``import``, ``integer lowering``,
``techniques``, ``offload`` (kernel library), ``legalize/fuse``, ``schedule`` (kernels
not in the scratch cache), ``kernel scratch`` (their TIR lowering and the cache),
``plan`` (execution and memory plan), ``other`` (the rest); ``total`` is their sum,
``process`` the process's CPU time (other threads included). Reported:

* ``cold``: the first subnet of a fresh process with an empty scratch cache (the
  imports' CPU time is reported apart);
* ``warm``: per stage, the median of the following subnets in the same process (the
  in-process scratch cache and legalization memo, `compiler.legalize_memo`, have met the
  first ones' kernels and calls);
* ``steady``: per stage, the median of the same subnets planned again in the same
  process (every kernel and call met before: the floor a long search converges to,
  where the blocks it meets repeat);
* ``warm disk``: the median total of the same subnets again in a new `CompiledSramModel`
  whose only cache is the file the first pass wrote (a resumed search or a new process:
  its legalization memo starts empty).

The path it replaces (Brevitas's exporter to a file, then plan-only) is timed on the
first `--check` subnets, and for those the arena, the whole `MemoryReport` and the graph
(`qanas.cost.subnet_qdq.graph_signature`) are compared with `compile_model` on
Brevitas's export: both must be equal.

    .venv/bin/python benchmarks/plan_only_speed.py --spaces squeezenas-small:6 \\
        --check 1 --json benchmarks/results/plan_only_speed.json
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import onnx  # noqa: E402

from compiler.driver import compile_model  # noqa: E402
from compiler.legalize_memo import LegalizeMemo  # noqa: E402
from compiler.plan_only import plan_model_memory  # noqa: E402
from compiler.scratch_store import PersistentScratchCache  # noqa: E402
from compiler.stage_times import StageTimes, stage  # noqa: E402
from qanas.cost.sram import CompiledSramModel  # noqa: E402
from qanas.cost.subnet_export import SubnetExporter  # noqa: E402
from qanas.cost.subnet_qdq import graph_signature  # noqa: E402
from qanas.space import get_space  # noqa: E402
from targets import get_target  # noqa: E402

IMPORT_CPU_SECONDS = time.process_time()

STAGES = ("export", "import", "integer lowering", "techniques", "offload", "legalize/fuse",
          "schedule", "kernel scratch", "plan")
"""The stages timed, in pipeline order (`compiler.stage_times` names all but export)."""

COLUMNS = (*STAGES, "other", "total", "process")


def _timed_report(sram: CompiledSramModel, cfg, memo: LegalizeMemo) -> tuple[dict, object]:
    """(CPU seconds per column of `COLUMNS`, report) of one subnet, outside the model's
    own report cache."""
    times = StageTimes()
    p0, t0 = time.process_time(), time.thread_time()
    with times.active():
        with stage("export"):
            graph = sram.exporter.qdq_model(cfg)
        report = plan_model_memory(graph, sram.target, sram.options, sram.scratch_cache,
                                   measure_unfused=False, legalize_memo=memo)
    total, process = time.thread_time() - t0, time.process_time() - p0
    seconds = {name: times.seconds.get(name, 0.0) for name in STAGES}
    seconds.update(other=total - times.total(), total=total, process=process)
    return {k: round(v, 3) for k, v in seconds.items()}, report


def _check(exporter: SubnetExporter, sram: CompiledSramModel, cfg, fast_report) -> dict:
    """Brevitas export + plan-only CPU time, and equality with the compiled arena."""
    with tempfile.TemporaryDirectory(prefix="qanas-speed-") as tmp:
        t0 = time.thread_time()
        path = exporter.export_onnx(cfg, tmp)
        t1 = time.thread_time()
        old = plan_model_memory(path, sram.target, sram.options, measure_unfused=False)
        t2 = time.thread_time()
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


def _median(rows: list[dict], column: str) -> float:
    return round(statistics.median(r[column] for r in rows), 3)


def bench_space(name: str, count: int, size, classes: int, target, check: int,
                seed: int, cache_dir: Path, optimise: str = "size") -> dict:
    """Times `count` subnets of space `name` (min, max, then random) and checks `check`."""
    space = get_space(name)
    rng = np.random.default_rng(seed)
    configs = [space.resolve("min"), space.resolve("max")]
    configs += [space.sample(rng) for _ in range(max(0, count - 2))]
    configs = configs[:count]
    exporter = SubnetExporter(space, size, classes, seed)
    sram = CompiledSramModel(space, target, size, classes, optimise=optimise,
                             exporter=exporter, share_reports=False,
                             scratch_cache=PersistentScratchCache(cache_dir / name))
    rows = []
    memo = LegalizeMemo()  # this pass's process memory, empty at the first subnet
    for i, cfg in enumerate(configs):
        seconds, report = _timed_report(sram, cfg, memo)
        row = {"arch": cfg.to_str(), "cpu_s": seconds, "arena_bytes": report.arena_bytes,
               "fallback": exporter.fallbacks.get(cfg.to_str())}
        if i < check:
            row.update(_check(exporter, sram, cfg, report))
        rows.append(row)
        print(f"{name} {i + 1}/{len(configs)} CPU {seconds['total']:.2f}s "
              f"(export {seconds['export']:.2f}s) arena {report.arena_bytes:,} B"
              + (f" compiled {row['compiled_arena_bytes']:,} B equal={row['arena_equal']}"
                 if i < check else ""), file=sys.stderr)
    steady = [_timed_report(sram, cfg, memo)[0] for cfg in configs]
    disk = CompiledSramModel(space, target, size, classes, optimise=optimise,
                             exporter=exporter, share_reports=False,
                             scratch_cache=PersistentScratchCache(cache_dir / name))
    disk_memo = LegalizeMemo()  # a new process: only the scratch file is warm
    again = [_timed_report(disk, cfg, disk_memo)[0] for cfg in configs]
    warm = [r["cpu_s"] for r in rows[1:]] or [rows[0]["cpu_s"]]
    return {
        "space": name, "subnets": len(rows),
        "cold_cpu_s": rows[0]["cpu_s"],
        "warm_median_cpu_s": {c: _median(warm, c) for c in COLUMNS},
        "steady_median_cpu_s": {c: _median(steady, c) for c in COLUMNS},
        "warm_disk_median_cpu_s": _median(again, "total"),
        "legalize_memo_hits": memo.hits, "legalize_memo_misses": memo.misses,
        "distinct_arenas": len({r["arena_bytes"] for r in rows}),
        "all_checked_equal": all(r.get("arena_equal", True) and r.get("report_equal", True)
                                 and r.get("graph_equal", True) for r in rows),
        "rows": rows,
    }


def _print_table(spaces: list[dict]) -> None:
    """Per space: the cold subnet's and the warm median's CPU seconds per stage."""
    for s in spaces:
        print(f"{s['space']}: {s['subnets']} subnets, {s['distinct_arenas']} distinct arenas, "
              f"checked equal to compile_model: {s['all_checked_equal']}; warm from disk "
              f"{s['warm_disk_median_cpu_s']:.2f} CPU-s")
        print(f"  {'stage':18} {'cold':>7} {'warm':>7} {'steady':>7}")
        for c in COLUMNS:
            print(f"  {c:18} {s['cold_cpu_s'][c]:>7.2f} {s['warm_median_cpu_s'][c]:>7.2f} "
                  f"{s['steady_median_cpu_s'][c]:>7.2f}")
        for r in s["rows"]:
            if "brevitas_export_s" in r:
                print(f"  {r['arch'][:48]:48} before: export {r['brevitas_export_s']:.2f}s + "
                      f"plan {r['plan_s_uncached']:.2f}s; now {r['cpu_s']['total']:.2f}s; "
                      f"arena {r['arena_bytes']:,} == compiled {r['compiled_arena_bytes']:,}: "
                      f"{r['arena_equal']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaces", default="squeezenas-small:6",
                        help="space:count,... (min, max, then random subnets)")
    parser.add_argument("--size", default="64x128", help="HxW")
    parser.add_argument("--classes", type=int, default=6)
    parser.add_argument("--target", default="host")
    parser.add_argument("--check", type=int, default=1,
                        help="subnets per space also exported by Brevitas and compiled")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--optimise", default="size", choices=("size", "speed"),
                        help="the compiler mode planned (the search's --optimise)")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    size = tuple(int(v) for v in args.size.lower().split("x"))
    target = get_target(args.target)
    results = {"command": " ".join(["benchmarks/plan_only_speed.py", *(argv or sys.argv[1:])]),
               "clock": "thread CPU seconds (time.thread_time)", "optimise": args.optimise,
               "import_cpu_s": round(IMPORT_CPU_SECONDS, 2), "load_average": os.getloadavg(),
               "cpus": os.cpu_count(), "spaces": []}
    with tempfile.TemporaryDirectory(prefix="qanas-scratch-") as cache_dir:
        for item in args.spaces.split(","):
            name, _, count = item.partition(":")
            results["spaces"].append(bench_space(name, int(count or 6), size, args.classes,
                                                 target, args.check, args.seed, Path(cache_dir),
                                                 args.optimise))
    results["load_average_end"] = os.getloadavg()
    print(f"imports {results['import_cpu_s']} CPU-s; load average "
          f"{results['load_average'][0]:.1f} -> {results['load_average_end'][0]:.1f} "
          f"on {results['cpus']} CPUs")
    _print_table(results["spaces"])
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0 if all(s["all_checked_equal"] for s in results["spaces"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
