"""Trains a supernet briefly on the synthetic data and scores seed/min/max in float and int8.

The question it answers: does a supernet trained for a few minutes on a laptop-class CPU
(2 torch threads) give subnets that clearly beat a trivial model? Per space, it

1. trains with `TrainConfig`'s defaults (or the `--set` overrides) for `--steps`
   optimizer steps, or for as many steps as fit in `--budget-s` seconds, at 64x128;
2. scores the seed, min and max subnets with `qanas.score.SubnetScorer` and
   `qanas.quant.QuantSpec()` on the same batches `qanas eval` uses (BN recalibrated
   on 4 training batches of 8, validation = the first 20% of the val split), so the
   figures match `qanas eval --supernet DIR/supernet.pt --subnet seed --quant int8`;
3. measures, on the same validation batches, the majority-class baseline (predict the
   most frequent class of the calibration batches everywhere) and prints each mIoU
   beside it with the ratio.

Training wall time depends on what else runs on the machine; the process CPU time
(all threads) is printed beside it. `--budget-s` turns the budget into a step count
from the time of a few probe steps taken on a throwaway supernet (so the LR schedule
still spans the whole run), then trains exactly that many steps.

Run:
    .venv/bin/python benchmarks/train_supernet.py --steps 300
    .venv/bin/python benchmarks/train_supernet.py --budget-s 240 --spaces squeezenas-small
    .venv/bin/python benchmarks/train_supernet.py --steps 60 --set optimizer=sgd --set lr=0.05
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch


def _parse_set(items: list[str]) -> dict:
    """`key=value` pairs; values are JSON when they parse (numbers, true/false), else strings."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set takes key=value, e.g. lr=0.003; got {item!r}")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _config(space: str, steps: int, args, overrides: dict):
    from qanas.train import TrainConfig

    base = TrainConfig(space=space, image_size=tuple(args.image_size), seed=args.seed,
                       **overrides)
    # One epoch of `steps` steps over `steps * batch` distinct scenes (the synthetic data is
    # generated on the fly), so the cosine schedule spans exactly the run. No per-epoch quick
    # validation: the scoring below replaces it.
    return base.replace(epochs=1, steps_per_epoch=steps,
                        train_length=max(base.train_length or 512, steps * base.batch_size),
                        val_batches=0, calib_batches=0)


def _probe_steps(space: str, args, overrides: dict, budget_s: float) -> tuple[int, float]:
    """Steps that fit in `budget_s`, from the median time of probe steps (first one dropped)."""
    from qanas.train import SupernetTrainer

    probe = _config(space, 4, args, overrides)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = SupernetTrainer(probe, tmp)
        loader = trainer._loader(trainer.train_set, shuffle=True, seed=0)
        times = []
        for image, mask in loader:
            start = time.perf_counter()
            trainer.train_step(image, mask)
            times.append(time.perf_counter() - start)
            if len(times) == 4:
                break
    per_step = sorted(times[1:])[len(times[1:]) // 2]
    return max(1, int(budget_s / per_step)), per_step


def _score(trainer, args) -> dict:
    from qanas.data import build_dataset, make_loader
    from qanas.quant import QuantSpec
    from qanas.score import SubnetScorer, cache_batches, val_subset
    from qanas.train import majority_class_miou

    size = tuple(args.image_size)
    train = build_dataset("synthetic", "train", image_size=size, seed=0)
    val = build_dataset("synthetic", "val", image_size=size, seed=0)
    spec = QuantSpec()
    # The batches of `qanas eval` with its defaults (batch 8, seed 0, 4 BN batches, 20% of val).
    train_batches = cache_batches(make_loader(train, 8, shuffle=True, seed=0),
                                  max(4, spec.calibration_batches))
    val_batches = val_subset(make_loader(val, 8, shuffle=False, seed=0), args.val_fraction)
    baseline = majority_class_miou(train_batches, val_batches, trainer.num_classes,
                                   val.ignore_index)["miou"]
    scorer = SubnetScorer(trainer.model, train_batches, val_batches, spec,
                          ignore_index=val.ignore_index, image_size=size)
    subnets = {}
    for name in ("seed", "min", "max"):
        score = scorer.score(trainer.space.resolve(name))
        subnets[name] = {"int8": round(score.miou, 4), "fp32": round(score.miou_fp32, 4),
                         "int8_x_baseline": round(score.miou / baseline, 2),
                         "macs": score.macs}
    return {"baseline_miou": round(baseline, 4), "val_images": sum(len(b[1]) for b in val_batches),
            "subnets": subnets}


def run_space(space: str, args, overrides: dict) -> dict:
    """Trains and scores one space; returns the JSON record printed by `main`."""
    from qanas.train import SupernetTrainer

    probe_s = None
    steps = args.steps
    if args.budget_s is not None:
        steps, probe_s = _probe_steps(space, args, overrides, args.budget_s)
    config = _config(space, steps, args, overrides)
    out = Path(args.out) / space if args.out else Path(tempfile.mkdtemp(prefix="bench-train-"))
    trainer = SupernetTrainer(config, out)
    wall, cpu = time.perf_counter(), time.process_time()
    summary = trainer.fit()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    record = {
        "space": space,
        "steps": trainer.step,
        "paths_per_step": trainer.sampler.paths_per_step,
        "train_wall_s": round(wall, 1),
        "train_cpu_s": round(cpu, 1),
        "s_per_step": round(wall / max(1, trainer.step), 2),
        "probe_s_per_step": None if probe_s is None else round(probe_s, 2),
        "final_loss": round(summary["final_loss"], 4),
        "config": {k: v for k, v in config.to_dict().items()
                   if k in ("optimizer", "lr", "weight_decay", "batch_size", "warmup_fraction",
                            "augment", "path_loss", "zero_init_residual", "grad_clip",
                            "sampler")},
        "checkpoint": summary["checkpoint"] if args.out else None,
    }
    start = time.perf_counter()
    record.update(_score(trainer, args))
    record["score_s"] = round(time.perf_counter() - start, 1)
    return record


def _table(record: dict) -> str:
    base = record["baseline_miou"]
    lines = [f"{record['space']}: {record['steps']} steps x {record['paths_per_step']} paths, "
             f"train {record['train_wall_s']} s wall / {record['train_cpu_s']} s CPU, "
             f"majority-class baseline mIoU {base:.3f} ({record['val_images']} val images)",
             f"  {'subnet':6} {'fp32':>7} {'int8':>7} {'int8/base':>9}"]
    for name, s in record["subnets"].items():
        lines.append(f"  {name:6} {s['fp32']:7.3f} {s['int8']:7.3f} {s['int8_x_baseline']:8.2f}x")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Prints a table and one JSON line per space."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaces", nargs="*", default=["squeezenas-small"],
                        help="spaces to train (default: squeezenas-small; mbv2-deeplab also works)")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, default=None, help="optimizer steps (default 300)")
    budget.add_argument("--budget-s", type=float, default=None,
                        help="train for about this many wall seconds instead of --steps")
    parser.add_argument("--image-size", type=int, nargs=2, default=(64, 128), metavar=("H", "W"))
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--val-fraction", type=float, default=0.2,
                        help="share of the val split scored (default 0.2, as `qanas eval`)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="TrainConfig override, e.g. --set optimizer=sgd --set lr=0.05")
    parser.add_argument("--out", help="keep checkpoints in OUT/SPACE/supernet.pt")
    args = parser.parse_args(argv)
    if args.steps is None and args.budget_s is None:
        args.steps = 300
    torch.set_num_threads(args.threads)
    overrides = _parse_set(args.set)
    for space in args.spaces:
        record = run_space(space, args, overrides)
        print(_table(record), flush=True)
        print(json.dumps(record), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
