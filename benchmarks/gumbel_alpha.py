"""Gumbel search on a trained supernet: expected latency of the learned distribution vs α.

Usage:
    .venv/bin/python benchmarks/gumbel_alpha.py --supernet runs/sq/supernet.pt \\
        --target cortex-m7 --alphas 0 0.5 2 --steps 200

Runs only the learning phase of `qanas search --algo gumbel` (same loader, costs
and `learn_distribution`) once per α on fresh copies of the supernet, with the
same seed, and prints one JSON object: per α the expected latency of the learned
(unpruned) distribution, its ratio to the seed subnet, the reduction against the
first α (usually 0), the most likely subnet and the wall time.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from qanas.search.gumbel.distribution import GumbelConfig, learn_distribution
from qanas.search.gumbel.phase import LATENCY_SOURCES, latency_costs, train_loader
from qanas.train.checkpoint import load_supernet
from targets import get_target


def main() -> None:
    """Learns one distribution per α and prints the expected latencies as JSON."""
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--supernet", required=True)
    p.add_argument("--target", default="cortex-m7")
    p.add_argument("--alphas", type=float, nargs="+", default=[0.0, 0.5, 2.0])
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--latency-source", choices=LATENCY_SOURCES, default=None)
    p.add_argument("--lut", default=None)
    p.add_argument("--image-size", type=int, nargs=2, default=None)
    p.add_argument("--data-root", default=None)
    p.add_argument("--batch-size", type=int, default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    target = get_target(args.target)
    rows = []
    for alpha in args.alphas:
        supernet, meta = load_supernet(args.supernet)
        size = tuple(args.image_size or meta["image_size"])
        costs, _ = latency_costs(args.latency_source, args.lut, supernet.space, target, size,
                                 supernet.num_classes)
        loader, ignore = train_loader(meta, args.data_root, args.seed, size, args.batch_size)
        start = time.perf_counter()
        dist = learn_distribution(supernet, loader, costs,
                                  GumbelConfig(steps=args.steps, alpha=alpha, seed=args.seed),
                                  ignore)
        best = supernet.space.decode([max(range(len(p)), key=p.__getitem__)
                                      for p in dist.probabilities])
        rows.append({"alpha": alpha, "expected_latency": dist.expected_latency(),
                     "expected_latency_ratio": dist.expected_latency_ratio(),
                     "final_ce": dist.history[-1]["ce"], "most_likely": best.to_str(),
                     "seconds": time.perf_counter() - start})
    base = rows[0]["expected_latency"]
    for r in rows:
        r["reduction_vs_first_pct"] = 100.0 * (1.0 - r["expected_latency"] / base)
    print(json.dumps({"supernet": args.supernet, "target": target.name, "steps": args.steps,
                      "seed": args.seed, "unit": costs.unit, "source": costs.source,
                      "seed_latency": costs.seed_cost, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
