"""`qanas search`: multi-objective search over a trained supernet for one target.

Example:
    qanas search --supernet runs/sq/supernet.pt --target host --algo nsga2 --budget 200 \\
        --out runs/sq-search --objectives miou,latency,sram --json

Writes into DIR: `archive.sqlite` (every evaluated subnet, resumable), `front.json`,
`front.csv`, `pareto.png` and `config.json` (and `gumbel.json` for `--algo gumbel`).
`--resume` continues a killed run from its archive (finished subnets are not scored
again); without it a DIR that already holds an archive is refused unless `--force`
starts over. The archive records the settings it was built with (the metric set's
settings, the target and the budgets); `--resume` with settings that differ, which
would silently start another metric set (or keep stale over-budget rows), is refused
with the differing keys named, unless `--allow-new-metric-set`.

One process per DIR: the run holds `qanas.utils.runlock`'s lock on DIR while it
works, and a second `qanas search` on the same DIR is refused with the holder's PID.

Under `torchrun` every process runs this command and scores its share of each
batch of subnets (`qanas.search.sharding`); rank 0 alone opens the archive,
writes DIR and prints the result.

The run itself is `qanas.search.run(SearchConfig)`; this module maps the flags
onto the config and the result onto the JSON.
"""

from __future__ import annotations

import argparse

from qanas.cli.command import Command
from qanas.search.config import DEFAULT_VAL_FRACTION, OPTIMISE_MODES, SearchConfig
from qanas.search.gumbel.distribution import GumbelConfig
from qanas.search.gumbel.phase import LATENCY_SOURCES


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--supernet", required=True, help="checkpoint from `qanas train-supernet`")
    parser.add_argument("--target", required=True, help="target name (see `qanas targets`)")
    parser.add_argument("--algo", default="nsga2",
                        help="nsga2 (default), random, coordinate-descent (one decision at a "
                             "time), or gumbel (differentiable, see below)")
    parser.add_argument("--budget", type=int, required=True, help="subnets to evaluate")
    parser.add_argument("--out", required=True, help="run directory")
    parser.add_argument("--objectives", default="miou,latency,sram",
                        help="comma-separated: miou, latency, sram, flash (default miou,latency,sram)")
    parser.add_argument("--latency-budget", type=float,
                        help="hard latency limit, in the latency model's unit (cycles)")
    parser.add_argument("--flash-budget", type=int,
                        help="hard weights-memory limit in bytes, below the target's own "
                             "(default: the target's weights region)")
    parser.add_argument("--bits", default="w8", choices=("w8", "w4w8"),
                        help="weight bit widths searched: w8 (int8, default) or w4w8 (4 or 8 "
                             "bits per conv, stem and classifiers int8; CPU targets only)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the search and scoring")
    parser.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"),
                        help="deployment resolution (default: the checkpoint's)")
    parser.add_argument("--val-fraction", type=float, default=DEFAULT_VAL_FRACTION,
                        help="share of the validation set used for mIoU (default 0.2)")
    parser.add_argument("--data-root", help="dataset folder (default: the checkpoint's)")
    parser.add_argument("--resume", action="store_true", help="continue from DIR/archive.sqlite")
    parser.add_argument("--force", action="store_true", help="discard an existing archive in DIR")
    parser.add_argument("--allow-new-metric-set", action="store_true",
                        help="with --resume: accept settings (seed, checkpoint, image size, "
                             "quantization, target, budgets...) that differ from those the "
                             "archive was built with; its earlier rows are then not reused")
    parser.add_argument("--lut", help="measured per-block latency table (`qanas lut build`) "
                                      "instead of the analytic latency model (default: the "
                                      "committed table of this space, target, size and classes)")
    parser.add_argument("--no-lut", action="store_true",
                        help="use the analytic latency model even where a table is committed")
    parser.add_argument("--optimise", choices=OPTIMISE_MODES, default="size",
                        help="the `qanas compile --optimise` mode the chosen subnets are "
                             "deployed with (default size, as compile's): SRAM is planned in "
                             "it and latency predicted for it; the committed latency tables "
                             "measure speed builds, so a size search predicts latency "
                             "analytically")
    _add_gumbel_arguments(parser)


def _add_gumbel_arguments(parser: argparse.ArgumentParser) -> None:
    """The `--algo gumbel` flags."""
    g = parser.add_argument_group("gumbel (differentiable search, --algo gumbel)")
    d = GumbelConfig()
    g.add_argument("--gumbel-steps", type=int, default=d.steps,
                   help=f"architecture steps, one batch each (default {d.steps})")
    g.add_argument("--alpha", type=float, default=d.alpha,
                   help=f"weight of E[latency]/latency(seed) in the loss (default {d.alpha})")
    g.add_argument("--samples", type=int, default=d.samples,
                   help=f"subnets drawn from the learned distribution (default {d.samples}); "
                        "the --budget most probable distinct ones are scored")
    g.add_argument("--tau-start", type=float, default=d.tau_start,
                   help=f"initial Gumbel-softmax temperature (default {d.tau_start})")
    g.add_argument("--tau-end", type=float, default=d.tau_end,
                   help=f"final temperature, exponential annealing (default {d.tau_end})")
    g.add_argument("--arch-lr", type=float, default=d.arch_lr,
                   help=f"Adam learning rate of the logits (default {d.arch_lr})")
    g.add_argument("--latency-source", choices=LATENCY_SOURCES,
                   help="per-choice costs of the latency term: lut (--lut FILE, or the "
                        "committed table for this space/target/size/classes), analytic (the "
                        "target's cycle model) or macs (default: the search's latency model: "
                        "lut when a table applies, else analytic)")
    g.add_argument("--train-weights", action="store_true",
                   help="also update the supernet's weights (default: only the logits learn)")
    g.add_argument("--gumbel-batch-size", type=int,
                   help="images per step (default: the checkpoint's training batch size)")


def search_config(args: argparse.Namespace) -> SearchConfig:
    """The `SearchConfig` of the parsed flags."""
    values = {k: v for k, v in vars(args).items() if k not in ("command", "json")}
    values["objectives"] = tuple(args.objectives.split(","))
    if args.image_size is not None:
        values["image_size"] = tuple(args.image_size)
    return SearchConfig(**values)


def _run(args: argparse.Namespace) -> dict:
    from qanas.search.job import run

    return run(search_config(args)).to_dict()


COMMAND = Command(
    name="search",
    help="search a trained supernet for the Pareto front of int8 mIoU vs latency/SRAM/flash",
    add_arguments=_add_arguments,
    run=_run,
)
