"""`qanas bench DIR|MODEL.onnx --target T [--runner qemu|host|qemu-user|serial:PORT]`.

Runs the compiled model on the runner and, as the reference, the host build of the same
emitted C on the same input; prints latency (median/min/max in the runner's unit:
instructions under QEMU, cycles on a board, seconds on the host), flash and SRAM, and
whether the outputs match the host bit for bit.

The JSON contract (``--json``): ``latency`` {median, min, max, unit}, ``flash_bytes``,
``sram_bytes`` {arena, stack_peak, static}, ``memory`` (the compiler's arena, bound of the
chosen schedule, layer-wise bound without techniques, techniques applied where, extra MACs,
``--optimise`` mode), ``outputs_match``, ``max_abs_diff``; beside
them, for the record: target, runner, project, runs, reference, per-layer times and the
runner's full protocol (toolchain, flags, emulator, compiler versions).

An Ethos-U target (``--target ethos-u55-128``) takes the QDQ ONNX (or int8 TFLite) model,
compiles it with Vela and reports Vela's estimates marked ``"estimate": true``, latency in
cycles plus ``latency_s``, CPU-fallback operators and Vela's protocol (`_npu.bench_npu`).
"""

from __future__ import annotations

import argparse
import statistics

import numpy as np

from qanas.bench.runners import compile_if_model, make_runner, memory_summary, random_inputs
from qanas.cli.command import Command

VELA_OPTIMISE = {"size": "Size", "speed": "Performance"}
"""`--optimise` of our compiler → Vela's strategy of the same intent."""


def add_flash_arguments(parser: argparse.ArgumentParser) -> None:
    """--flash / --no-flash: how `--runner serial:PORT` puts the firmware on the board."""
    parser.add_argument("--flash", default=None, metavar="CMD",
                        help="serial runner: flash command with {elf}/{hex}/{bin} (default: the "
                             "board's documented command, see `qanas targets`)")
    parser.add_argument("--no-flash", action="store_true",
                        help="serial runner: the board is flashed already; do not flash")


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="compiled project directory or ONNX model")
    parser.add_argument("--target", required=True, help="target, e.g. cortex-m4")
    parser.add_argument("--runner", default=None,
                        help="qemu | host | qemu-user | serial:PORT (default: the target's)")
    parser.add_argument("--out", help="where to compile an ONNX model (default: a temp dir)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs (default 3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs first (default 1)")
    add_flash_arguments(parser)
    parser.add_argument("--per-layer", action="store_true", help="time every kernel")
    parser.add_argument("--seed", type=int, default=0, help="seed of the input")
    parser.add_argument("--force", action="store_true", help="overwrite --out")
    parser.add_argument("--optimise", choices=(*VELA_OPTIMISE, *VELA_OPTIMISE.values()),
                        default=None,
                        help="size (default): the smallest arena; speed: no technique that "
                             "recomputes MACs. NPU targets: Vela's Size / Performance (those "
                             "spellings are accepted too; default Performance)")


def _run(args: argparse.Namespace) -> dict:
    from runtime.runners.base import read_io
    from targets import get_target

    target = get_target(args.target)
    if target.npu_config is not None:  # Ethos-U: Vela's estimates, nothing is executed
        from qanas.cli.commands._npu import bench_npu

        args.optimise = VELA_OPTIMISE.get(args.optimise, args.optimise or "Performance")
        return bench_npu(args, target)
    args.optimise = args.optimise or "size"
    if args.optimise not in VELA_OPTIMISE:
        raise ValueError(f"--optimise {args.optimise} is Vela's spelling, for NPU targets; "
                         f"for {target.name} use {' or '.join(VELA_OPTIMISE)}")
    project = compile_if_model(args.model, target, args.out, force=args.force,
                               optimise=args.optimise)
    in_specs, _ = read_io(project)
    inputs = {s.name: a for s, a in zip(in_specs, random_inputs(in_specs, args.seed), strict=True)}
    runner = make_runner(args.runner, target, args.warmup, args.per_layer, args.flash,
                         args.no_flash)
    result = runner.run(project, inputs, repeats=args.repeats)
    from runtime.runners.firmware_base import HostReferenceRunner

    reference = HostReferenceRunner().run(project, inputs) if runner.name != "host" else result
    diffs = [float(np.max(np.abs(result.outputs[k].astype(np.float64)
                                 - reference.outputs[k].astype(np.float64)), initial=0.0))
             for k in reference.outputs]
    match = all(np.array_equal(result.outputs[k], reference.outputs[k])
                for k in reference.outputs)
    proto = result.protocol
    values = proto.get("latency", result.latency_s)
    unit = proto.get("unit", "seconds")
    sram = proto.get("sram_bytes") or {"arena": proto.get("arena_bytes"), "stack_peak": None,
                                       "static": None}
    return {
        "target": target.name, "runner": runner.name, "project": str(project),
        "latency": {"median": statistics.median(values), "min": min(values),
                    "max": max(values), "unit": unit},
        "runs": len(values),
        "flash_bytes": proto.get("flash_bytes"),
        "sram_bytes": {k: sram.get(k) for k in ("arena", "stack_peak", "static")},
        "memory": memory_summary(project),
        "outputs_match": bool(match), "max_abs_diff": max(diffs, default=0.0),
        "reference": "host build of the same C" if runner.name != "host" else "itself",
        "layers": proto.get("layers", []), "protocol": proto,
    }


COMMAND = Command("bench", "run a compiled model on a runner (QEMU, host, board) and "
                  "compare with the host build", _add_arguments, _run)
