"""NSGA-II vs random search with the same budget: hypervolume of their fronts.

Usage:
    .venv/bin/python benchmarks/search_hv.py --supernet runs/sq/supernet.pt --budget 40

Both runs score subnets with the real scorer (`qanas search`'s `build_scorer`) on
the checkpoint's dataset and share one archive, so a subnet found by both is
scored once. Objectives (quantized mIoU as -mIoU, latency, SRAM) are normalized
to [0, 1] with the min/max over every subnet either run evaluated; the common
reference point is 1.1 in every dimension; pymoo's `HV` indicator measures each
front. Prints both hypervolumes and their ratio (nsga2 / random).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from pymoo.indicators.hv import HV

from qanas.cli.commands.search import build_scorer
from qanas.search.algorithms import run_search
from qanas.search.archive import EvalArchive, metric_set_key
from qanas.search.hw import HardwareCostModel
from qanas.search.problem import Budgets, SubnetEvaluation, parse_objectives
from targets import get_target


def main() -> None:
    """Runs both searches and prints the hypervolumes as JSON."""
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--supernet", required=True)
    p.add_argument("--target", default="host")
    p.add_argument("--budget", type=int, default=40)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--objectives", default="miou,latency,sram")
    p.add_argument("--val-fraction", type=float, default=0.25)
    p.add_argument("--image-size", type=int, nargs=2, default=None)
    p.add_argument("--data-root", default=None)
    p.add_argument("--out", default="runs/search_hv")
    args = p.parse_args()
    objectives = parse_objectives(args.objectives)
    setup = build_scorer(args)
    target = get_target(args.target)
    hw = HardwareCostModel(setup.space, target, setup.image_size, setup.num_classes)
    archive = EvalArchive(Path(args.out) / "archive.sqlite")
    results = {}
    for algo in ("random", "nsga2"):
        evaluation = SubnetEvaluation(setup.space, hw, setup.evaluator, archive,
                                      metric_set_key(**setup.metric_settings), Budgets(),
                                      setup.checkpoint_sha256, args.seed)
        results[algo] = (run_search(algo, evaluation, args.budget, args.seed, objectives),
                         evaluation)
    everything = np.stack([ev.objectives(r, objectives) for res, ev in results.values()
                           for r in res.records])
    lo, hi = everything.min(0), everything.max(0)
    scale = np.where(hi > lo, hi - lo, 1.0)
    indicator = HV(ref_point=np.full(len(objectives), 1.1))
    report = {"budget": args.budget, "objectives": list(objectives), "space": setup.space.name,
              "image_size": list(setup.image_size), "target": target.name}
    for algo, (res, _) in results.items():
        F = (res.front_matrix() - lo) / scale
        report[algo] = {"hv": float(indicator(F)) if len(F) else 0.0, "front_size": len(F),
                        "best_miou": max((r.miou for r in res.front), default=None),
                        "scored": res.scored, "cache_hits": res.cache_hits}
    rnd = report["random"]["hv"]
    report["ratio_nsga2_over_random"] = report["nsga2"]["hv"] / rnd if rnd else None
    archive.close()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
