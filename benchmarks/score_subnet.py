"""Times scoring one subnet end to end on the synthetic dataset, per registered space.

Scoring = extract + BN recalibration + float val + Brevitas quantize + calibrate +
int8 fake-quant val on a fraction (default 20%) of the synthetic val split. The
float-only baseline (extract + BN recal + float val) is measured in the same run.
The supernets are untrained (timing does not depend on the weights).

Run:
    .venv/bin/python benchmarks/score_subnet.py --image-size 64 128 --subnet seed
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch


def main(argv: list[str] | None = None) -> int:
    """Prints one JSON line per space with seconds per subnet (int8 and float) and the ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaces", nargs="*", help="spaces to time (default: all registered)")
    parser.add_argument("--subnet", default="seed", help="max | min | seed | random:SEED | arch")
    parser.add_argument("--image-size", type=int, nargs=2, default=(64, 128), metavar=("H", "W"))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--val-fraction", type=float, default=0.2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from qanas.data import build_dataset, make_loader
    from qanas.quant import QuantSpec
    from qanas.score import SubnetScorer, cache_batches, val_subset
    from qanas.space import get_space, list_spaces

    size = tuple(args.image_size)
    train = build_dataset("synthetic", "train", image_size=size, seed=0)
    val = build_dataset("synthetic", "val", image_size=size, seed=0)
    spec = QuantSpec()
    t0 = time.perf_counter()
    train_batches = cache_batches(make_loader(train, args.batch_size, shuffle=True, seed=0),
                                  spec.calibration_batches)
    val_batches = val_subset(make_loader(val, args.batch_size, shuffle=False, seed=0),
                             args.val_fraction)
    load_s = time.perf_counter() - t0
    for name in args.spaces or list_spaces():
        space = get_space(name)
        supernet = space.build_supernet(train.num_classes).eval()
        cfg = space.resolve(args.subnet)
        timings = {}
        for label, qspec in (("int8", spec), ("fp32", None)):
            scorer = SubnetScorer(supernet, train_batches, val_batches, qspec)
            scorer.score(cfg)  # warm-up: first-call imports and allocator growth
            timings[label] = [scorer.score(cfg).seconds for _ in range(args.repeats)]
        int8 = statistics.median(timings["int8"])
        fp32 = statistics.median(timings["fp32"])
        print(json.dumps({
            "space": name, "arch": cfg.to_str(), "image_size": list(size),
            "val_images": sum(int(b[0].shape[0]) for b in val_batches),
            "bn_calib_batches": len(train_batches), "batch_size": args.batch_size,
            "threads": args.threads, "seconds_int8": round(int8, 3),
            "seconds_fp32": round(fp32, 3), "ratio": round(int8 / fp32, 2),
            "data_load_seconds_once": round(load_s, 3),
        }), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
