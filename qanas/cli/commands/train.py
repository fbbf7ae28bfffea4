"""`qanas train`: train one subnet standalone (from scratch or inherited weights), optional QAT.

Example:
    qanas train --arch seed --supernet runs/sq/supernet.pt --init supernet --epochs 10 \\
        --qat --out runs/seed-standalone --json

Writes `DIR/standalone.pt` (atomically after every epoch), `DIR/config.json` (resolved
config, seed, versions) and `DIR/result.json` (float and int8 val mIoU, loss history).
One process per DIR (`qanas.utils.runlock`): a second `qanas train` on it is refused.
The run itself is `qanas.train.job.run_standalone`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from qanas.cli.command import Command


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags shared by `qanas train` and `qanas rankcorr` (the standalone recipe)."""
    parser.add_argument("--epochs", type=int, default=10, help="float epochs (default 10)")
    parser.add_argument("--qat-epochs", type=int,
                        help="QAT fine-tuning epochs (default: max(1, epochs // 4))")
    parser.add_argument("--qat-lr-scale", type=float, default=0.1,
                        help="QAT LR = LR x this (default 0.1)")
    parser.add_argument("--batch-size", type=int, default=8, help="images per batch (default 8)")
    parser.add_argument("--lr", type=float,
                        help="peak LR (default: qanas.train.config.DEFAULT_LR: 0.05 sgd, "
                             "1e-2 adamw)")
    parser.add_argument("--optimizer", choices=("sgd", "adamw"), default="sgd")
    parser.add_argument("--weight-decay", type=float, help="default: 4e-5 sgd, 1e-2 adamw")
    parser.add_argument("--data", help="dataset name (default: the supernet's, else synthetic)")
    parser.add_argument("--data-root", help="dataset folder")
    parser.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"),
                        help="training resolution (default: the supernet's, else 64 128)")
    parser.add_argument("--steps-per-epoch", type=int, help="cap on steps per epoch")
    parser.add_argument("--train-length", type=int, help="synthetic: number of train scenes")
    parser.add_argument("--val-length", type=int, help="synthetic: number of val scenes")
    parser.add_argument("--val-batches", type=int, help="cap on val batches (default: all)")
    parser.add_argument("--calib-batches", type=int, default=4,
                        help="activation calibration batches (default 4)")
    parser.add_argument("--no-augment", dest="augment", action="store_false",
                        help="disable random scale-crop/flip")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")


def standalone_config(args: argparse.Namespace, arch: str, init: str, supernet: str | None,
                      qat: bool):
    """The `StandaloneConfig` of the shared flags."""
    from qanas.train.standalone import StandaloneConfig

    return StandaloneConfig(
        arch=arch, init=init, supernet=supernet, dataset=args.data, data_root=args.data_root,
        image_size=tuple(args.image_size) if args.image_size else None, epochs=args.epochs,
        qat=qat, qat_epochs=args.qat_epochs, qat_lr_scale=args.qat_lr_scale,
        batch_size=args.batch_size, lr=args.lr, optimizer=args.optimizer,
        weight_decay=args.weight_decay, seed=args.seed, steps_per_epoch=args.steps_per_epoch,
        train_length=args.train_length, val_length=args.val_length, augment=args.augment,
        calib_batches=args.calib_batches, val_batches=args.val_batches)


def check_standalone_image_size(args: argparse.Namespace, arch: str) -> None:
    """Refuses a `--image-size` below the total stride of `arch`'s space (see `qanas.space.geometry`)."""
    if not args.image_size:
        return  # the supernet's size, or the 64x128 default
    from qanas.space import get_space
    from qanas.space.geometry import check_image_size

    if ":" in arch:
        space = arch.split(":", 1)[0]
    elif args.supernet:
        from qanas.train.checkpoint import load_checkpoint

        space = load_checkpoint(args.supernet)["space"]
    else:
        return  # build_subnet names the missing space prefix
    check_image_size(get_space(space), args.image_size)


def log_line(text: str) -> None:
    """One progress line on stderr (silenced by QANAS_QUIET, like the progress bars)."""
    import os
    import sys

    if not os.environ.get("QANAS_QUIET"):
        print(text, file=sys.stderr, flush=True)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--arch", required=True,
                        help="'space:label_..._label', or max/min/seed/random:N with "
                             "--supernet; a mixed-precision '...@w8448...' (qanas search "
                             "--bits w4w8) trains and exports with its per-conv weight bits")
    parser.add_argument("--supernet", help="checkpoint of `qanas train-supernet`")
    parser.add_argument("--init", choices=("scratch", "supernet"), default=None,
                        help="scratch (default without --supernet) or supernet (inherit "
                             "weights; default with --supernet)")
    parser.add_argument("--qat", action="store_true",
                        help="QAT fine-tuning (Brevitas) after the float phase")
    add_training_arguments(parser)
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--export-onnx", default=None, metavar="PATH",
                        help="also export the trained int8 model (QAT or post-training) as "
                             "QDQ ONNX for `qanas compile` (default: OUT/model.onnx with --qat)")
    parser.add_argument("--force", action="store_true", help="overwrite DIR/standalone.pt")


def _run(args: argparse.Namespace) -> dict:
    from qanas.train.job import run_standalone

    init = args.init or ("supernet" if args.supernet else "scratch")
    cfg = standalone_config(args, args.arch, init, args.supernet, args.qat)
    check_standalone_image_size(args, args.arch)
    export = args.export_onnx or (Path(args.out) / "model.onnx" if args.qat else None)
    result = run_standalone(cfg, args.out, force=args.force, export_onnx=export,
                            progress=log_line)
    return {k: v for k, v in result.items() if k != "history"}


COMMAND = Command("train", "train one subnet standalone (scratch or inherited weights), "
                  "optionally with QAT; reports float and int8 val mIoU", _add_arguments, _run)
