"""`qanas rankcorr`: does the supernet rank subnets like standalone training does?

Example:
    qanas rankcorr --supernet runs/fair/supernet.pt --compare runs/spos/supernet.pt \\
        --n 12 --epochs 20 --out runs/rankcorr --json

Scores a seeded pool of subnets with the supernet, trains `--n` of them standalone
(QAT), and correlates the two rankings (Kendall τ, Spearman ρ, top-k overlap, bootstrap
95 % intervals), beside the trivial rankers MACs, parameters and latency. A second
`qanas rankcorr` with the same flags and `--out` shares the standalone trainings.

Writes DIR/rankcorr.json, DIR/scatter.png, DIR/config.json, DIR/pool.json,
DIR/selection.json, DIR/standalone/<i>/.

The study itself, step by step, is `qanas.rankcorr.run_rankcorr(RankCorrConfig)`; this
module maps the flags one to one onto the config.
"""

from __future__ import annotations

import argparse

from qanas.cli.command import Command
from qanas.cli.commands.train import add_training_arguments, log_line


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--supernet", required=True, help="checkpoint of `qanas train-supernet`")
    parser.add_argument("--compare", metavar="CKPT", nargs="+",
                        help="more supernets of the same space (another seed, SPOS vs "
                             "FairNAS) scoring the same subnets")
    parser.add_argument("--n", type=int, default=12, help="subnets trained standalone (12)")
    parser.add_argument("--select", choices=("spread", "pareto"), default="spread",
                        help="spread: n subnets evenly over the Pareto layers (default); "
                             "pareto: the seed network, (n-1)/2 Pareto-optimal and (n-1)/2 "
                             "Pareto-worse subnets (the NXP study's choice)")
    parser.add_argument("--bootstrap", type=int, default=2000,
                        help="bootstrap resamples for the 95%% intervals of tau and rho "
                             "(default 2000, seeded by --seed; 0: none)")
    parser.add_argument("--pool", type=int, help="random candidates scored (default 3 x n)")
    parser.add_argument("--target", default="cortex-m4",
                        help="target of the latency axis of the Pareto layers (cortex-m4)")
    parser.add_argument("--top-k", type=int, nargs="+", default=[3, 5],
                        help="top-k overlap sizes (default 3 5)")
    parser.add_argument("--init", choices=("scratch", "supernet"), default="scratch",
                        help="standalone start: scratch (default) or inherited weights")
    parser.add_argument("--no-qat", dest="qat", action="store_false",
                        help="standalone without QAT (int8 = PTQ of the float result)")
    parser.add_argument("--standalone-seeds", type=int, nargs="+", metavar="S",
                        help="train every subnet once per seed and correlate with the mean "
                             "int8 mIoU; also reports how well two seeds agree (the noise "
                             "ceiling of the ranking). Default: --seed only")
    parser.add_argument("--val-fraction", type=float, default=1.0,
                        help="share of the val split for the supernet scores (default 1.0)")
    add_training_arguments(parser)
    parser.add_argument("--out", required=True, help="output directory")


def rankcorr_config(args: argparse.Namespace):
    """The `RankCorrConfig` of the parsed flags."""
    from qanas.rankcorr import RankCorrConfig

    return RankCorrConfig(**{k: v for k, v in vars(args).items() if k not in ("command", "json")})


def _run(args: argparse.Namespace) -> dict:
    from qanas.rankcorr import run_rankcorr

    return run_rankcorr(rankcorr_config(args), log=log_line)


COMMAND = Command("rankcorr", "rank correlation of supernet vs standalone (QAT) int8 mIoU "
                  "over subnets spread across the front", _add_arguments, _run)
