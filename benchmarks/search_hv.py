"""Search algorithms with the same budget (NSGA-II, random, coordinate descent): the
hypervolume of their fronts.

Usage:
    .venv/bin/python benchmarks/search_hv.py --supernet /tmp/studies/fairnas/supernet.pt \\
        --target cortex-m7 --budget 100 --out benchmarks/results/search_hv.json
    .venv/bin/python benchmarks/search_hv.py --supernet ... --algorithms random nsga2 \\
        coordinate-descent --optimise speed --out ...

The costs are `qanas search`'s (`qanas.cost.cost_model_for` with ``--optimise``: SRAM
planned by the compiler in that mode, latency from the committed table measured in that
mode where one exists, else the analytic model; the default ``size`` keeps the earlier
studies' setting).

Both runs score subnets with the real scorer (`qanas.search.scorer_setup.build_scorer`,
as `qanas search` does) on the checkpoint's dataset, under the target's hard budgets (SRAM for the arena,
the weights region for the weights: `qanas.cost.hardware.target_budgets`, as `qanas
search` does), and share one archive in `--work-dir`, so a subnet found by both
is scored once (`scored` / `cache_hits` say how often). The archive is started
afresh unless `--resume`. Objectives (quantized mIoU as -mIoU, latency, SRAM)
are normalized to [0, 1] with the min/max over every subnet either run
evaluated; the common reference point is 1.1 in every dimension; pymoo's `HV`
indicator measures each front. An objective that is constant over every
evaluated subnet (e.g. an arena set by the stem) adds nothing to either volume.

Prints one JSON object (and writes it atomically to `--out` when given): both
hypervolumes, their ratio (nsga2 / random), front sizes, wall time of each run,
and the protocol with the exact command.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
from pymoo.indicators.hv import HV

from qanas.cost import cost_model_for
from qanas.cost.hardware import target_budgets
from qanas.search.algorithms import run_search
from qanas.search.archive import ARCHIVE_NAME, EvalArchive, metric_set_key
from qanas.search.problem import Budgets, SubnetEvaluation, parse_objectives
from qanas.search.scorer_setup import ScorerConfig, build_scorer
from qanas.utils.io import atomic_write_json, versions
from targets import get_target

ALGORITHMS = ("random", "nsga2")
"""The algorithms run by default."""
CHOICES = ("random", "nsga2", "coordinate-descent")


def normalized_hypervolumes(fronts: dict[str, np.ndarray], everything: np.ndarray,
                            ref: float = 1.1) -> dict[str, float]:
    """pymoo HV of each front after min/max normalization over `everything` (ref point `ref`).

    Args:
        fronts: name → minimized objective rows of a front.
        everything: every objective row evaluated by any run (fixes the normalization).
        ref: reference point coordinate in every normalized dimension.
    """
    lo, hi = everything.min(0), everything.max(0)
    scale = np.where(hi > lo, hi - lo, 1.0)
    indicator = HV(ref_point=np.full(everything.shape[1], ref))
    return {name: float(indicator((F - lo) / scale)) if len(F) else 0.0
            for name, F in fronts.items()}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--supernet", required=True, help="checkpoint of `qanas train-supernet`")
    p.add_argument("--target", default="cortex-m7", help="target (default cortex-m7)")
    p.add_argument("--budget", type=int, default=100, help="subnets per algorithm (default 100)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--objectives", default="miou,latency,sram")
    p.add_argument("--val-fraction", type=float, default=0.2,
                   help="share of the val split scored (default 0.2, as `qanas search`)")
    p.add_argument("--image-size", type=int, nargs=2, default=None)
    p.add_argument("--data-root", default=None)
    p.add_argument("--work-dir", default="runs/search_hv", help="archive folder")
    p.add_argument("--resume", action="store_true", help="keep the archive of --work-dir")
    p.add_argument("--out", help="also write the JSON here (atomically)")
    p.add_argument("--algorithms", nargs="+", default=list(ALGORITHMS), choices=CHOICES,
                   help="algorithms to run, in order (default: random nsga2)")
    p.add_argument("--optimise", choices=("size", "speed"), default="size",
                   help="compiler mode the costs describe (as `qanas search --optimise`)")
    return p


def main(argv: list[str] | None = None) -> dict:
    """Runs both searches, prints the report as JSON and returns it."""
    args = _parser().parse_args(argv)
    command = shlex.join([sys.executable, *([sys.argv[0]] if argv is None else []),
                          *(sys.argv[1:] if argv is None else argv)])
    objectives = parse_objectives(args.objectives)
    setup = build_scorer(ScorerConfig(args.supernet, args.image_size and tuple(args.image_size),
                                      args.data_root, args.seed, args.val_fraction))
    target = get_target(args.target)
    budgets = Budgets(**target_budgets(target))
    costs = cost_model_for(target, setup.space, setup.image_size, setup.num_classes,
                           optimise=args.optimise, seed=args.seed)
    hw = costs.model
    metric_settings = {**setup.metric_settings, **costs.metric_settings()}
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    if not args.resume:
        for suffix in ("", "-wal", "-shm"):
            Path(str(work / ARCHIVE_NAME) + suffix).unlink(missing_ok=True)
    archive = EvalArchive(work / ARCHIVE_NAME)
    metric_set = metric_set_key(**metric_settings)
    results, walls = {}, {}
    try:
        for algo in args.algorithms:
            evaluation = SubnetEvaluation(setup.space, hw, setup.evaluator, archive, metric_set,
                                          budgets, setup.checkpoint_sha256, args.seed)
            start = time.perf_counter()
            results[algo] = (run_search(algo, evaluation, args.budget, args.seed, objectives),
                             evaluation)
            walls[algo] = time.perf_counter() - start
            print(f"{algo}: {len(results[algo][0].records)} subnets in {walls[algo]:.0f} s",
                  file=sys.stderr, flush=True)
    finally:
        archive.close()
    everything = np.stack([ev.objectives(r, objectives) for res, ev in results.values()
                           for r in res.records])
    hv = normalized_hypervolumes({a: res.front_matrix() for a, (res, _) in results.items()},
                                 everything)
    report = {"budget": args.budget, "objectives": list(objectives), "space": setup.space.name,
              "image_size": list(setup.image_size), "target": target.name,
              "budgets": budgets.__dict__}
    for algo, (res, _) in results.items():
        report[algo] = {"hv": hv[algo], "front_size": len(res.front),
                        "evaluated": len(res.records),
                        "best_miou": max((r.miou for r in res.front), default=None),
                        "scored": res.scored, "cache_hits": res.cache_hits,
                        "wall_s": round(walls[algo], 1)}
    for algo in results:
        for base in ("random", "nsga2"):
            if algo != base and base in results and report[base]["hv"]:
                key = f"ratio_{algo.replace('-', '_')}_over_{base}"
                report[key] = report[algo]["hv"] / report[base]["hv"]
    report["protocol"] = {
        "command": command, "supernet": str(args.supernet),
        "checkpoint_sha256": setup.checkpoint_sha256, "metric_settings": metric_settings,
        "optimise": args.optimise,
        "latency_table": None if costs.latency_table is None else str(costs.latency_table),
        "normalization": "min/max over every subnet either run evaluated", "ref_point": 1.1,
        "indicator": "pymoo.indicators.hv.HV", "seed": args.seed,
        "threads": int(os.environ.get("QANAS_THREADS", "1")), "versions": versions()}
    if args.out:
        atomic_write_json(args.out, report)
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
