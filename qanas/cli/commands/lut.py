"""`qanas lut build|validate`: the measured per-block latency table of a space on a target.

Examples:
    qanas lut build --space squeezenas-small --target cortex-m4 --image-size 64 64 \\
        --options k3e1g1,k3e6g1,k5e3g1,skip --out luts/sq-small-m4-64.json --json
    qanas lut validate --lut luts/sq-small-m4-64.json --n 10 --seed 1 --json

`build` writes the table after every measured entry; `--resume` keeps the entries of
an existing file and measures the rest. `validate` measures held-out random subnets
(drawn from the table's options, never the reference) end to end and reports MAPE,
the share within ±10 % and Kendall τ; it writes `<lut>.validation.json`.
See `qanas.search.lut` for the protocol.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from qanas.cli.command import Command


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("build", "validate"))
    parser.add_argument("--space", help="search space (build)")
    parser.add_argument("--target", help="target (build; validate: the table's)")
    parser.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"), default=(64, 64),
                        help="input size (build; default 64 64)")
    parser.add_argument("--num-classes", type=int, default=4, help="classes (build; default 4)")
    parser.add_argument("--options", help="comma-separated labels to measure (default: all)")
    parser.add_argument("--reference", default="seed",
                        help="subnet measured end to end for the fixed part (default seed)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="timed runs per model, median kept (QEMU counts are exact)")
    parser.add_argument("--runner", help="runner (default: the target's)")
    parser.add_argument("--out", help="table file (build)")
    parser.add_argument("--resume", action="store_true", help="keep the entries of --out")
    parser.add_argument("--lut", help="table file (validate)")
    parser.add_argument("--n", type=int, default=10, help="held-out subnets (validate)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the held-out draw")
    parser.add_argument("--work-dir", help="where models are compiled (default: a temp dir)")


def _run(args: argparse.Namespace) -> dict:
    from qanas.cli.commands.train import log_line
    from qanas.errors import ConfigError
    from qanas.search.lut import (
        CompiledModelMeasurer,
        LatencyLUT,
        build_lut,
        held_out_subnets,
        validate_lut,
    )
    from qanas.space import get_space
    from qanas.utils.io import OutputExistsError, atomic_write_json
    from targets import get_target

    work = Path(args.work_dir or tempfile.mkdtemp(prefix="qanas-lut-"))
    if args.action == "build":
        if not (args.space and args.target and args.out):
            raise ConfigError("lut build needs --space, --target and --out")
        out = Path(args.out)
        if out.exists() and not args.resume:
            raise OutputExistsError(f"{out} exists; pass --resume to complete it or choose "
                                    "another --out")
        space, target = get_space(args.space), get_target(args.target)
        measurer = CompiledModelMeasurer(target, work, repeats=args.repeats, runner=args.runner)
        resume = LatencyLUT.load(out) if args.resume and out.exists() else None
        if resume is not None and resume.protocol.get("target") != target.name:
            raise ConfigError(f"{out} was measured on {resume.protocol.get('target')!r}, "
                              f"not {target.name!r}")
        options = [o.strip() for o in args.options.split(",")] if args.options else None
        lut = build_lut(space, tuple(args.image_size), measurer, args.num_classes, options,
                        space.resolve(args.reference), out, resume, log=log_line)
        return {"lut": str(out), "entries": len(lut.entries), "fixed": lut.fixed,
                "unit": lut.unit, "target": target.name, "space": space.name,
                "image_size": list(lut.image_size), "options": lut.protocol.get("options")}
    if not args.lut:
        raise ConfigError("lut validate needs --lut FILE")
    lut = LatencyLUT.load(args.lut)
    space = get_space(lut.space)
    target = get_target(args.target or lut.protocol["target"])
    measurer = CompiledModelMeasurer(target, work, repeats=args.repeats, runner=args.runner)
    subnets = held_out_subnets(space, lut, args.n, args.seed)
    report = validate_lut(lut, space, measurer, subnets, seed=lut.protocol.get("seed", 0),
                          log=log_line)
    result = {"lut": args.lut, "target": target.name, **report.to_dict()}
    atomic_write_json(Path(str(args.lut) + ".validation.json"), result)
    return result


COMMAND = Command("lut", "build or validate a measured per-block latency table",
                  _add_arguments, _run)
