"""`qanas train-supernet`: FairNAS (or SPOS) supernet training into DIR/supernet.pt.

Example:
    qanas train-supernet --space squeezenas-small --data synthetic --image-size 64 128 \\
        --epochs 3 --out runs/sq-small --json

Writes `DIR/supernet.pt` (atomically, after every epoch and every
`--checkpoint-every` steps within one), `DIR/config.json` (resolved config,
seed, versions, command line) and `DIR/result.json`. `--resume` continues from
`DIR/supernet.pt` with its stored configuration, from the middle of an epoch if
that is where the run stopped, bit-identically to an uninterrupted run; flags
given with `--resume` must agree with it, except `--epochs`, which may extend the
run. One process per DIR: a second `train-supernet` on a DIR in use is refused
with the holder's PID (`qanas.utils.runlock`).

Under `torchrun` (see docs/scale-out.md) every process runs this command:
`--batch-size` is the global batch, split evenly over the processes, and only
rank 0 writes DIR and prints the result.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from qanas.cli.command import Command
from qanas.train.trainer import DEFAULT_CHECKPOINT_EVERY

# CLI flag -> TrainConfig field, for flags that default to None (= "not given").
_FIELDS = {
    "space": "space", "data": "dataset", "data_root": "data_root", "image_size": "image_size",
    "epochs": "epochs", "batch_size": "batch_size", "lr": "lr", "optimizer": "optimizer",
    "weight_decay": "weight_decay", "sampler": "sampler", "init_from": "init_from",
    "seed": "seed", "steps_per_epoch": "steps_per_epoch", "train_length": "train_length",
    "val_length": "val_length", "warmup_fraction": "warmup_fraction", "grad_clip": "grad_clip",
    "val_batches": "val_batches", "calib_batches": "calib_batches", "path_loss": "path_loss",
}


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--space", help="search space name (see `qanas spaces`)")
    parser.add_argument("--data", help="dataset name (default: synthetic)")
    parser.add_argument("--data-root", help="dataset folder (not for synthetic)")
    parser.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"),
                        help="training resolution (default: 64 128)")
    parser.add_argument("--epochs", type=int, help="epochs (default: 10)")
    parser.add_argument("--batch-size", type=int, help="images per batch (default: 4)")
    parser.add_argument("--lr", type=float, help="peak LR (default: 1e-2 adamw, 0.05 sgd)")
    parser.add_argument("--optimizer", choices=("sgd", "adamw"), help="default: adamw")
    parser.add_argument("--weight-decay", type=float, help="default: 4e-5 sgd, 1e-2 adamw")
    parser.add_argument("--sampler", choices=("fairnas", "spos"),
                        help="fairnas: strict fairness, m paths per step (default); "
                             "spos: one uniform path per step")
    parser.add_argument("--path-loss", choices=("mean", "sum"),
                        help="combine the m FairNAS path losses by mean (default) or sum "
                             "(the paper's accumulation; use it with sgd)")
    parser.add_argument("--zero-init-residual", action="store_true", default=None,
                        help="start every residual block as identity (last BN gamma = 0)")
    parser.add_argument("--qat", action="store_true", default=None,
                        help="train with Brevitas fake-quant (QAT supernet)")
    parser.add_argument("--init-from", metavar="PATH",
                        help="MobileNetV2 state dict (torchvision keys) for the encoder")
    parser.add_argument("--seed", type=int, help="seed of weights, paths and data (default: 0)")
    parser.add_argument("--steps-per-epoch", type=int, help="cap on steps per epoch")
    parser.add_argument("--train-length", type=int, help="synthetic: number of train scenes")
    parser.add_argument("--val-length", type=int, help="synthetic: number of val scenes")
    parser.add_argument("--augment", dest="augment", action="store_true", default=None,
                        help="random scale-crop/flip (default: on, except for synthetic)")
    parser.add_argument("--no-augment", dest="augment", action="store_false", default=None,
                        help="disable random scale-crop/flip")
    parser.add_argument("--warmup-fraction", type=float, help="LR warmup share (default 0.05)")
    parser.add_argument("--grad-clip", type=float, help="max grad norm, 0 = off (default 5)")
    parser.add_argument("--val-batches", type=int, help="val batches per epoch (default 4)")
    parser.add_argument("--calib-batches", type=int, help="BN recalibration batches (default 4)")
    parser.add_argument("--device", default="cpu",
                        help="cpu (default) or cuda (under torchrun: cuda:LOCAL_RANK, nccl)")
    parser.add_argument("--checkpoint-every", type=int, metavar="STEPS",
                        help=f"optimizer steps between checkpoints within an epoch, 0 = only "
                             f"at epoch ends (default {DEFAULT_CHECKPOINT_EVERY}: a few "
                             f"minutes of CPU at the default settings)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--resume", action="store_true", help="continue DIR/supernet.pt")
    parser.add_argument("--force", action="store_true", help="overwrite DIR/supernet.pt")


def _given(args: argparse.Namespace) -> dict:
    """The TrainConfig fields the user set explicitly on the command line."""
    given = {field: getattr(args, flag) for flag, field in _FIELDS.items()
             if getattr(args, flag) is not None}
    for field in ("qat", "augment", "zero_init_residual"):
        if getattr(args, field) is not None:
            given[field] = getattr(args, field)
    if "image_size" in given:
        given["image_size"] = tuple(given["image_size"])
    return given


def _run(args: argparse.Namespace) -> dict:
    from qanas.distributed import session

    with session(args.device) as dist:
        return _train(args, dist)


def _train(args: argparse.Namespace, dist) -> dict:
    from qanas.errors import ConfigError
    from qanas.space import get_space
    from qanas.space.geometry import check_image_size
    from qanas.train import TrainConfig
    from qanas.train.sharding import check_global_batch
    from qanas.utils.io import check_output_dir
    from qanas.utils.runlock import lock_run_dir

    # Everything a bad flag can fail on is checked before DIR is created or locked.
    out = check_output_dir(args.out)
    every = DEFAULT_CHECKPOINT_EVERY if args.checkpoint_every is None else args.checkpoint_every
    if every < 0:
        raise ConfigError(f"--checkpoint-every must be >= 0 steps (0: only at epoch ends); "
                          f"got {every}")
    given = _given(args)
    config = None
    if args.resume:
        if not (out / "supernet.pt").is_file():
            raise ConfigError(f"--resume: no checkpoint at {out / 'supernet.pt'}; start the "
                              f"run without --resume")
    else:
        if "space" not in given:
            raise ConfigError("--space is required (see `qanas spaces`), unless --resume")
        config = TrainConfig(**given)  # validated on every rank before rank 0 touches DIR
        check_image_size(get_space(config.space), config.image_size,
                         "--image-size" if "image_size" in given else "the default image size")
        check_global_batch(config.batch_size, dist.world_size)
    lock = dist.on_main(lambda: lock_run_dir(out, "train-supernet"))
    try:
        return _train_locked(args, dist, out, given, config, every)
    finally:
        if lock is not None:
            lock.release()


def _train_locked(args: argparse.Namespace, dist, out: Path, given: dict, config,
                  every: int) -> dict:
    from qanas.errors import ConfigError
    from qanas.train import CHECKPOINT_NAME, SupernetTrainer, TrainConfig, load_checkpoint
    from qanas.utils.io import atomic_write_json, prepare_output_dir, write_run_metadata

    checkpoint = out / CHECKPOINT_NAME
    start = time.perf_counter()
    if args.resume:
        stored = TrainConfig.from_dict(load_checkpoint(checkpoint)["config"])
        stored_dict = stored.to_dict()
        conflicts = {
            k: (v, stored_dict[k]) for k, v in TrainConfig(**{**stored_dict, **given}).to_dict()
            .items() if k != "epochs" and k in given and v != stored_dict[k]
        }
        if conflicts:
            listed = "; ".join(f"--{k.replace('_', '-')} {v!r} vs stored {s!r}"
                               for k, (v, s) in sorted(conflicts.items()))
            raise ConfigError(f"--resume continues {checkpoint} with its stored configuration, "
                              f"but these flags differ: {listed}. Drop them, or start a new run "
                              f"in another --out (or with --force)")
        trainer = SupernetTrainer.from_checkpoint(checkpoint, out, epochs=given.get("epochs"),
                                                  device=args.device, dist=dist,
                                                  checkpoint_every=every)
    else:
        dist.on_main(lambda: prepare_output_dir(out, args.force, marker=CHECKPOINT_NAME))
        trainer = SupernetTrainer(config, out, device=args.device, dist=dist,
                                  checkpoint_every=every)
    config = trainer.config
    dist.on_main(lambda: write_run_metadata(
        out, {"train": config.to_dict(), "resumed": bool(args.resume),
              "num_classes": trainer.num_classes, "init": trainer.init_report,
              "world_size": dist.world_size, "device": str(trainer.device)}, config.seed))
    summary = trainer.fit()
    result = {
        "checkpoint": summary["checkpoint"],
        "epochs": summary["epochs"],
        "final_loss": summary["final_loss"],
        "val_miou": summary["val_miou"],
        "baseline_miou": summary["baseline_miou"],
        "sampler_counts": [c.tolist() for c in trainer.sampler.counts],
        "init": trainer.init_report,
        "seconds": round(time.perf_counter() - start, 3),
    }
    dist.on_main(lambda: atomic_write_json(out / "result.json",
                                           {**result, "history": summary["history"]}))
    return result


COMMAND = Command("train-supernet", "train a FairNAS/SPOS weight-sharing supernet",
                  _add_arguments, _run)
