"""`qanas demo`: the whole pipeline on the embedded default (what `make demo` runs).

One process per run folder (`qanas.utils.runlock`): a second demo on it is refused.
"""

from __future__ import annotations

import argparse

from qanas.cli.command import Command
from qanas.search.config import OPTIMISE_MODES


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
    parser.add_argument("--val-images", type=int, default=64,
                        help="validation images for every int8 mIoU of the run")
    parser.add_argument("--qat-supernet-steps", type=int, default=20,
                        help="final supernet steps with int8 fake-quant (0: float only)")
    parser.add_argument("--budget", type=int, default=40,
                        help="subnets the NSGA-II search evaluates")
    parser.add_argument("--latency-subnets", type=int, default=3,
                        help="front subnets whose latency is measured on the target "
                             "(0: no latency check)")
    parser.add_argument("--qat-steps", type=int, default=60,
                        help="QAT fine-tuning steps of the chosen subnet (0: none)")
    parser.add_argument("--fidelity-images", type=int, default=8,
                        help="validation images run through the compiled C on the host")
    parser.add_argument("--firmware-targets", nargs="*",
                        default=["cortex-m4", "cortex-m7", "cortex-m55"],
                        help="QEMU targets the firmware runs on")
    parser.add_argument("--npu-target", default="ethos-u55-128",
                        help="Ethos-U target compiled with Vela ('none' skips it)")
    parser.add_argument("--optimise", choices=OPTIMISE_MODES, default="speed",
                        help="compiler mode the chosen subnet is deployed with, and the "
                             "search plans SRAM and predicts latency for (default speed: the "
                             "mode the committed latency tables measure)")
    parser.add_argument("--bits", default="w8", choices=("w8", "w4w8"),
                        help="weight bits searched: w8 (int8 only) or w4w8 (4 or 8 bits per "
                             "searchable conv, weight flash as a fourth objective)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="runs/demo", help="run directory")
    parser.add_argument("--force", action="store_true", help="overwrite an earlier run")


def _run(args: argparse.Namespace) -> dict:
    from qanas.demo import DemoConfig, run_demo
    from qanas.space import get_space
    from qanas.space.geometry import check_image_size
    from qanas.utils.io import check_output_dir
    from qanas.utils.runlock import lock_run_dir

    check_image_size(get_space(args.space), args.image_size)
    out = check_output_dir(args.out)
    config = DemoConfig(space=args.space, target=args.target, dataset=args.data,
                        data_root=args.data_root, image_size=tuple(args.image_size),
                        epochs=args.epochs, steps_per_epoch=args.steps_per_epoch,
                        batch_size=args.batch_size, val_images=args.val_images,
                        qat_supernet_steps=args.qat_supernet_steps, budget=args.budget,
                        latency_subnets=args.latency_subnets, qat_steps=args.qat_steps,
                        fidelity_images=args.fidelity_images,
                        firmware_targets=tuple(args.firmware_targets),
                        npu_target=None if args.npu_target in ("", "none") else args.npu_target,
                        optimise=args.optimise, bits=args.bits, seed=args.seed)
    with lock_run_dir(out, "demo"):  # one demo per run folder
        return run_demo(config, out, force=args.force)


def _table(results: dict) -> str:
    from qanas.demo import format_table

    return format_table(results)


COMMAND = Command("demo", "run the whole pipeline (train, search, QAT, compile, QEMU, Vela, "
                  "report) on the synthetic default", _add_arguments, _run, _table)
