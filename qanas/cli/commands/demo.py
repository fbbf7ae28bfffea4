"""`qanas demo`: the whole pipeline on the embedded default (what `make demo` runs)."""

from __future__ import annotations

import argparse
import sys

from qanas.cli.command import Command


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--space", default="squeezenas-small", help="search space")
    parser.add_argument("--target", default="cortex-m7",
                        help="deployment target whose SRAM/flash budgets the subnet must meet")
    parser.add_argument("--data", default="synthetic", help="dataset name")
    parser.add_argument("--data-root", default=None, help="dataset folder (real datasets)")
    parser.add_argument("--image-size", type=int, nargs=2, default=(64, 128), metavar=("H", "W"))
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--steps-per-epoch", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--candidates", type=int, default=4,
                        help="random subnets scored besides seed/min/max")
    parser.add_argument("--firmware-targets", nargs="*",
                        default=["cortex-m4", "cortex-m7", "cortex-m55"],
                        help="QEMU targets the firmware runs on")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/demo", help="run directory")
    parser.add_argument("--force", action="store_true", help="overwrite an earlier run")


def _run(args: argparse.Namespace) -> dict:
    from qanas.demo import DemoConfig, format_table, run_demo

    config = DemoConfig(space=args.space, target=args.target, dataset=args.data,
                        data_root=args.data_root, image_size=tuple(args.image_size),
                        epochs=args.epochs, steps_per_epoch=args.steps_per_epoch,
                        batch_size=args.batch_size, candidates=args.candidates,
                        firmware_targets=tuple(args.firmware_targets), seed=args.seed)
    results = run_demo(config, args.out, force=args.force)
    print(format_table(results), file=sys.stderr)
    return results


COMMAND = Command("demo", "run the whole pipeline (train, score int8, compile, QEMU) on the "
                  "synthetic default", _add_arguments, _run)
