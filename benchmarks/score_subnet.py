"""Old vs new int8 scoring of subnets, per registered space: CPU seconds per subnet.

"old" is `SubnetScorer(engine="brevitas")`: the subnet is quantized by building its
Brevitas model (`quantize_model` + `calibrate`), as every score did before the lean
quantized graph. "new" is the default `engine="lean"` (`qanas.quant.quant_graph` /
`quant_model`). Both score the same subnets on the same cached synthetic batches
(extract + BN recalibration + float val + quantize + calibrate + int8 val on a fraction
of the val split), one torch thread, untrained supernets (timing does not depend on
the weights).

Each subnet is scored by both engines in interleaved rounds (the order alternates per
round), timed in process CPU seconds; the per-subnet medians over rounds are then
summarised per space (median over subnets) with the float-only score for scale, the
subnets per hour that 2 cores give, and the largest |int8 mIoU difference| between the
engines (the new engine is bit-exact with the old one, so 0 is expected).

With ``--bits w4w8`` each subnet is also scored as a mixed-precision subnet (the same
architecture, every other searchable conv at 4 bits, `qanas.search.bits.BitsEvaluator`
as ``qanas search --bits w4w8`` scores it) by both engines, in the same rounds: the rows
gain the mixed scores' CPU seconds and the largest |int8 mIoU difference| between the
engines on them.

Run (one torch thread: OMP_NUM_THREADS=1):
    .venv/bin/python benchmarks/score_subnet.py --spaces squeezenas-small mbv2-deeplab \\
        --image-size 64 128 --subnets 8 --rounds 3 \\
        --out benchmarks/results/score_subnet_64x128.json
    .venv/bin/python benchmarks/score_subnet.py --spaces squeezenas-small --bits w4w8 \\
        --image-size 64 128 --subnets 4 --rounds 2 \\
        --out benchmarks/results/score_subnet_64x128_w4w8.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

CORES = 2


def _cpu_seconds(score, cfg):
    start = time.process_time()
    miou = score(cfg)
    return time.process_time() - start, miou


def _alternate_bits(space, cfg):
    """`cfg` with every other searchable conv at 4 bits (the first one 4)."""
    from qanas.space.bits import with_bits

    return with_bits(cfg, [4 if i % 2 == 0 else 8 for i in range(space.slot_count(cfg))])


def _scorings(supernet, spec, train_batches, val_batches, bits: str, image_size, num_classes):
    """name -> (score function of a config, config transform): int8 per engine, and with
    `bits` w4w8 the mixed-precision score per engine."""
    from qanas.score import SubnetScorer
    from qanas.search.bits import BitsEvaluator
    from qanas.space.bits import WeightBitsSpace

    scorers = {engine: SubnetScorer(supernet, train_batches, val_batches, spec, engine=engine)
               for engine in ("brevitas", "lean")}
    out = {engine: (lambda c, s=s: s.score(c).miou, lambda c: c)
           for engine, s in scorers.items()}
    if bits == "w4w8":
        space = WeightBitsSpace(supernet.space, image_size, num_classes)
        for engine, scorer in scorers.items():
            evaluator = BitsEvaluator(scorer, space)
            out[f"{engine}_w4w8"] = (lambda c, e=evaluator: e.score(c)["miou"],
                                     lambda c: _alternate_bits(space, c))
    return scorers["lean"], out


def _space_row(name: str, args, train_batches, val_batches, num_classes: int) -> dict:
    from qanas.quant import QuantSpec
    from qanas.score import SubnetScorer
    from qanas.space import get_space
    from qanas.supernet import build_supernet

    space = get_space(name)
    torch.manual_seed(0)
    supernet = build_supernet(space, num_classes).eval()
    lean, scorings = _scorings(supernet, QuantSpec(), train_batches, val_batches, args.bits,
                               tuple(args.image_size), num_classes)
    fp32 = SubnetScorer(supernet, train_batches, val_batches, None)
    cfgs = [space.resolve("seed")] + [space.sample(np.random.default_rng(i))
                                      for i in range(args.subnets - 1)]
    configs = {key: [transform(c) for c in cfgs] for key, (_, transform) in scorings.items()}
    for key, (score, _) in scorings.items():
        score(configs[key][0])  # warm-up: first-call imports and allocator growth
    fp32.score(cfgs[0])
    times = {key: [[] for _ in cfgs] for key in scorings}
    fp32_times = []
    miou_diff = {"int8": 0.0, "w4w8": 0.0}
    for round_ in range(args.rounds):
        order = list(scorings) if round_ % 2 == 0 else list(reversed(scorings))
        for i, cfg in enumerate(cfgs):
            mious = {}
            for key in order:
                seconds, mious[key] = _cpu_seconds(scorings[key][0], configs[key][i])
                times[key][i].append(seconds)
            miou_diff["int8"] = max(miou_diff["int8"], abs(mious["lean"] - mious["brevitas"]))
            if args.bits == "w4w8":
                miou_diff["w4w8"] = max(miou_diff["w4w8"],
                                        abs(mious["lean_w4w8"] - mious["brevitas_w4w8"]))
            if round_ == 0:
                fp32_times.append(_cpu_seconds(lambda c: fp32.score(c).miou, cfg)[0])
    per_subnet = {key: [statistics.median(t) for t in times[key]] for key in times}
    old = statistics.median(per_subnet["brevitas"])
    new = statistics.median(per_subnet["lean"])
    row = {
        "space": name, "subnets": [c.to_str() for c in cfgs],
        "cpu_s_per_subnet_old": round(old, 3), "cpu_s_per_subnet_new": round(new, 3),
        "speedup": round(old / new, 2),
        "cpu_s_per_subnet_fp32_only": round(statistics.median(fp32_times), 3),
        "subnets_per_hour_2_cores_old": int(CORES * 3600 / old),
        "subnets_per_hour_2_cores_new": int(CORES * 3600 / new),
        "per_subnet_cpu_s_old": [round(v, 3) for v in per_subnet["brevitas"]],
        "per_subnet_cpu_s_new": [round(v, 3) for v in per_subnet["lean"]],
        "max_abs_int8_miou_diff": miou_diff["int8"],
    }
    if args.bits == "w4w8":
        old_mixed = statistics.median(per_subnet["brevitas_w4w8"])
        new_mixed = statistics.median(per_subnet["lean_w4w8"])
        row.update({
            "mixed_subnets": [c.to_str() for c in configs["lean_w4w8"]],
            "cpu_s_per_mixed_subnet_old": round(old_mixed, 3),
            "cpu_s_per_mixed_subnet_new": round(new_mixed, 3),
            "mixed_over_int8_new": round(new_mixed / new, 2),
            "subnets_per_hour_2_cores_mixed_new": int(CORES * 3600 / new_mixed),
            "per_mixed_subnet_cpu_s_new": [round(v, 3) for v in per_subnet["lean_w4w8"]],
            "max_abs_mixed_miou_diff": miou_diff["w4w8"],
        })
    row["lean_fallbacks"] = lean.lean_fallbacks
    return row


def main(argv: list[str] | None = None) -> int:
    """Prints one JSON line per space; `--out` also writes them all as one JSON document."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaces", nargs="*", help="spaces to time (default: all registered)")
    parser.add_argument("--subnets", type=int, default=8,
                        help="subnets per space: the seed and random samples (default 8)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--image-size", type=int, nargs=2, default=(64, 128), metavar=("H", "W"))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--val-fraction", type=float, default=0.2)
    parser.add_argument("--bits", choices=("w8", "w4w8"), default="w8",
                        help="w4w8: also time mixed-precision scores (see the docstring)")
    parser.add_argument("--out", help="JSON file for the results")
    args = parser.parse_args(argv)
    if args.subnets < 1 or args.rounds < 1:
        parser.error("--subnets and --rounds must be at least 1")
    torch.set_num_threads(1)

    from qanas.data import build_dataset, make_loader
    from qanas.quant import QuantSpec
    from qanas.score import cache_batches, val_subset
    from qanas.score.subnet import DEFAULT_BN_BATCHES
    from qanas.space import list_spaces

    size = tuple(args.image_size)
    train = build_dataset("synthetic", "train", image_size=size, seed=0)
    val = build_dataset("synthetic", "val", image_size=size, seed=0)
    need = max(DEFAULT_BN_BATCHES, QuantSpec().calibration_batches)
    train_batches = cache_batches(make_loader(train, args.batch_size, shuffle=True, seed=0), need)
    val_batches = val_subset(make_loader(val, args.batch_size, shuffle=False, seed=0),
                             args.val_fraction)
    rows = []
    load_before = os.getloadavg()
    for name in args.spaces or list_spaces():
        row = _space_row(name, args, train_batches, val_batches, train.num_classes)
        print(json.dumps(row), flush=True)
        rows.append(row)
    if args.out:
        doc = {
            "benchmark": "score_subnet", "image_size": list(size), "batch_size": args.batch_size,
            "val_images": sum(int(b[0].shape[0]) for b in val_batches),
            "bn_batches": DEFAULT_BN_BATCHES, "calibration_batches": QuantSpec().calibration_batches,
            "rounds": args.rounds, "bits": args.bits, "threads": 1, "timer": "time.process_time per score",
            "summary": "median over subnets of each subnet's median over rounds",
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                        "loadavg_before": [round(v, 2) for v in load_before],
                        "loadavg_after": [round(v, 2) for v in os.getloadavg()]},
            "torch": torch.__version__, "spaces": rows,
        }
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
