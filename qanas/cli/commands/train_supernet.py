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
with the holder's PID (`qanas.utils.runlock`). The run itself is
`qanas.train.job.run_training`.

Under `torchrun` (see docs/scale-out.md) every process runs this command:
`--batch-size` is the global batch, split evenly over the processes, and only
rank 0 writes DIR and prints the result.
"""

from __future__ import annotations

import argparse

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
    from qanas.train.job import run_training
    from qanas.train.sharding import check_global_batch
    from qanas.utils.io import check_output_dir

    # Everything a bad flag can fail on is checked before DIR is created or locked.
    check_output_dir(args.out)
    every = DEFAULT_CHECKPOINT_EVERY if args.checkpoint_every is None else args.checkpoint_every
    if every < 0:
        raise ConfigError(f"--checkpoint-every must be >= 0 steps (0: only at epoch ends); "
                          f"got {every}")
    given = _given(args)
    config = None
    if not args.resume:
        if "space" not in given:
            raise ConfigError("--space is required (see `qanas spaces`), unless --resume")
        config = TrainConfig(**given)  # validated on every rank before rank 0 touches DIR
        check_image_size(get_space(config.space), config.image_size,
                         "--image-size" if "image_size" in given else "the default image size")
        check_global_batch(config.batch_size, dist.world_size)
    return run_training(args.out, config, resume=args.resume, changes=given if args.resume else None,
                        force=args.force, device=args.device, checkpoint_every=every, dist=dist)


COMMAND = Command("train-supernet", "train a FairNAS/SPOS weight-sharing supernet",
                  _add_arguments, _run)
