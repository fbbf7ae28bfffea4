"""`qanas lut build|validate`: the measured per-block latency table of a space on a target.

Examples:
    qanas lut build --space squeezenas-small --target cortex-m7 --image-size 64 128 \\
        --num-classes 6 --resume --json
    qanas lut validate --lut targets/luts/squeezenas-small_cortex-m7_64x128_c6.json \\
        --n 20 --seed 1 --json

`build` writes the table (default `targets/luts/<space>_<target>_<H>x<W>_c<classes>.json`,
where `qanas search` finds it by exact match) after every measurement; `--resume` keeps
the measurements of an existing file of the same protocol and measures the rest.
`validate` measures held-out random subnets (drawn from the table's options, never a
reference) end to end and reports MAPE, the share within ±10 % and Kendall τ; it writes
`<table>.validation.json` next to the table. See `qanas.cost.lut.table` for the protocol.
"""

from __future__ import annotations

import argparse
import os
import shlex
import tempfile
import time
from pathlib import Path

from qanas.cli.command import Command

DEFAULT_IMAGE_SIZE = (64, 128)  # the synthetic dataset's and the demo's


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    from qanas.cost.lut.table import DEFAULT_REFERENCES
    from qanas.data.synthetic import CLASS_NAMES

    parser.add_argument("action", choices=("build", "validate"))
    parser.add_argument("--space", help="search space (build)")
    parser.add_argument("--target", help="target (build; validate: the table's)")
    parser.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"),
                        default=DEFAULT_IMAGE_SIZE, help="input size (build; default 64 128)")
    parser.add_argument("--num-classes", type=int, default=len(CLASS_NAMES),
                        help=f"classes (build; default {len(CLASS_NAMES)}, the synthetic set's)")
    parser.add_argument("--options", help="comma-separated labels to measure (default: all)")
    parser.add_argument("--references", default=",".join(DEFAULT_REFERENCES),
                        help="subnets measured end to end for the fixed part; the first defines "
                             "each block's context (default seed,min,max)")
    parser.add_argument("--repeats", type=int, default=1,
                        help="timed runs per model, median kept (QEMU counts are exact)")
    parser.add_argument("--runner", help="runner (default: the target's)")
    parser.add_argument("--out", help="table file (build; default targets/luts/<name>.json)")
    parser.add_argument("--resume", action="store_true", help="keep the measurements of --out")
    parser.add_argument("--lut", help="table file (validate)")
    parser.add_argument("--n", type=int, default=10, help="held-out subnets (validate)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the held-out draw")
    parser.add_argument("--work-dir", help="where models are compiled (default: a temp dir)")


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _build(args: argparse.Namespace, work: Path) -> dict:
    from qanas.cli.commands.train import log_line
    from qanas.cost.lut.committed import lut_dir, lut_filename
    from qanas.cost.lut.measure import CompiledModelMeasurer
    from qanas.cost.lut.table import LatencyLUT, build_lut
    from qanas.errors import ConfigError
    from qanas.space import get_space
    from qanas.utils.io import OutputExistsError
    from targets import get_target

    if not (args.space and args.target):
        raise ConfigError("lut build needs --space and --target")
    space, target = get_space(args.space), get_target(args.target)
    size = (int(args.image_size[0]), int(args.image_size[1]))
    out = Path(args.out or lut_dir() / lut_filename(space.name, target.name, size,
                                                    args.num_classes))
    if out.exists() and not args.resume:
        raise OutputExistsError(f"{out} exists; pass --resume to complete it or choose "
                                "another --out")
    references = [space.resolve(r.strip()) for r in args.references.split(",") if r.strip()]
    if not references:
        raise ConfigError("--references needs at least one subnet (seed, min, max, or an arch)")
    options = [o.strip() for o in args.options.split(",")] if args.options else None
    command = ["qanas", "lut", "build", "--space", space.name, "--target", target.name,
               "--image-size", str(size[0]), str(size[1]), "--num-classes",
               str(args.num_classes), "--references", args.references, "--out", _shown(out),
               "--resume"] + (["--options", args.options] if args.options else [])
    measurer = CompiledModelMeasurer(target, work, repeats=args.repeats, runner=args.runner)
    resume = LatencyLUT.load(out) if args.resume and out.exists() else None
    start = time.perf_counter()
    lut = build_lut(space, size, measurer, args.num_classes, options, references, out, resume,
                    command=shlex.join(command), log=log_line)
    return {"lut": str(out), "entries": len(lut.entries), "missing": len(lut.missing(space)),
            "fixed": lut.fixed, "overhead": lut.overhead, "unit": lut.unit,
            "target": target.name, "space": space.name, "image_size": list(lut.image_size),
            "num_classes": lut.num_classes, "options": lut.protocol.get("options"),
            "seconds": round(time.perf_counter() - start, 1),
            "build_seconds": lut.protocol.get("build_seconds")}


def _validate(args: argparse.Namespace, work: Path) -> dict:
    from datetime import datetime, timezone

    from qanas.cli.commands.train import log_line
    from qanas.cost.lut.committed import validation_path
    from qanas.cost.lut.measure import CompiledModelMeasurer
    from qanas.cost.lut.table import LatencyLUT
    from qanas.cost.lut.validation import held_out_subnets, validate_lut
    from qanas.errors import ConfigError
    from qanas.space import get_space
    from qanas.utils.io import atomic_write_json, file_sha256, versions
    from targets import get_target

    if not args.lut:
        raise ConfigError("lut validate needs --lut FILE")
    lut = LatencyLUT.load(args.lut)
    space = get_space(lut.space)
    target = get_target(args.target or lut.protocol["target"])
    measurer = CompiledModelMeasurer(target, work, repeats=args.repeats, runner=args.runner)
    subnets = held_out_subnets(space, lut, args.n, args.seed)
    start = time.perf_counter()
    report = validate_lut(lut, space, measurer, subnets, log=log_line)
    command = ["qanas", "lut", "validate", "--lut", _shown(Path(args.lut)), "--n", str(args.n),
               "--seed", str(args.seed)] + (["--target", args.target] if args.target else [])
    protocol = {"target": target.name, "runner": measurer.runner.name, "unit": lut.unit,
                "space": lut.space, "image_size": list(lut.image_size),
                "num_classes": lut.num_classes, "held_out_seed": args.seed,
                "held_out": "random subnets over the table's options, none a reference",
                "measurement": "end to end on the table's seeded images and weights",
                "lut_sha256": file_sha256(args.lut), "lut_built": lut.protocol.get("built"),
                "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                "seconds": round(time.perf_counter() - start, 1), "versions": versions(),
                "command": shlex.join(command)}
    result = {"lut": args.lut, "target": target.name, **report.to_dict(), "protocol": protocol}
    path = validation_path(args.lut)
    atomic_write_json(path, result)
    return {**result, "validation": str(path)}


def _run(args: argparse.Namespace) -> dict:
    import torch

    torch.set_num_threads(max(1, int(os.environ.get("QANAS_THREADS", "1"))))
    work = Path(args.work_dir or tempfile.mkdtemp(prefix="qanas-lut-"))
    return _build(args, work) if args.action == "build" else _validate(args, work)


COMMAND = Command("lut", "build or validate a measured per-block latency table",
                  _add_arguments, _run)
