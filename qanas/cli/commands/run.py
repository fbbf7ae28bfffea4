"""`qanas run DIR --inputs x.npy ... --out out.npz`: run a compiled project, save its outputs."""

from __future__ import annotations

import argparse

from qanas.cli.command import Command
from qanas.cli.commands.bench import add_flash_arguments


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("project", help="directory written by `qanas compile`")
    parser.add_argument("--inputs", nargs="+", required=True,
                        help=".npy files, one per model input, in the model's input order")
    parser.add_argument("--out", required=True, help=".npz file for the outputs, by output name")
    parser.add_argument("--target", default=None,
                        help="target whose runner executes the project (default: the target "
                             "it was compiled for)")
    parser.add_argument("--runner", default=None,
                        help="qemu | host | qemu-user | serial:PORT (default: the target's)")
    parser.add_argument("--repeats", type=int, default=1, help="runs to time (default 1)")
    add_flash_arguments(parser)
    parser.add_argument("--force", action="store_true", help="overwrite an existing --out file")


def quantize_input(array, spec):
    """`array` as the model's input dtype: float data is quantized for an int8 input."""
    import numpy as np

    array = np.asarray(array)
    if array.dtype.kind == "f" and np.dtype(spec.dtype).kind in "iu" and spec.scale is not None:
        info = np.iinfo(spec.dtype)
        q = np.round(array / spec.scale) + (spec.zero_point or 0)
        return np.clip(q, info.min, info.max).astype(spec.dtype)
    return array


def _run(args: argparse.Namespace) -> dict:
    import io
    import json
    from pathlib import Path

    import numpy as np

    from qanas.bench.runners import make_runner
    from qanas.utils.io import OutputExistsError, atomic_write_bytes
    from runtime.runners import read_io
    from targets import get_target

    project = Path(args.project)
    in_specs, _ = read_io(project)
    if len(args.inputs) != len(in_specs):
        raise ValueError(f"the model takes {len(in_specs)} input(s) "
                         f"{[s.name for s in in_specs]}, got {len(args.inputs)} file(s)")
    if args.repeats < 1:
        raise ValueError(f"--repeats must be >= 1, got {args.repeats}")
    out = Path(args.out)
    if out.exists() and not args.force:
        raise OutputExistsError(f"{out} exists; pass --force to overwrite it")
    target_name = args.target or json.loads((project / "compile.json").read_text())["target"]
    runner = make_runner(args.runner, get_target(target_name), warmup=0, per_layer=False,
                         flash=args.flash, no_flash=args.no_flash)
    inputs = {s.name: quantize_input(np.load(path), s) for s, path in zip(in_specs, args.inputs, strict=True)}
    result = runner.run(project, inputs, repeats=args.repeats)
    buffer = io.BytesIO()
    np.savez(buffer, **result.outputs)
    atomic_write_bytes(out, buffer.getvalue())
    return {
        "out": str(out),
        "outputs": {k: {"shape": list(v.shape), "dtype": str(v.dtype)}
                    for k, v in result.outputs.items()},
        "latency_s": result.latency_s,
        "runner": runner.name,
        "target": target_name,
        "ran_on": result.protocol.get("target", target_name),
    }


COMMAND = Command("run", "run a compiled C project on .npy inputs and save the outputs",
                  _add_arguments, _run)
