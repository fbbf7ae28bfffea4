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
cycles plus ``latency_s``, CPU-fallback operators and Vela's protocol
(`qanas.bench.npu.bench_npu`). The work is `qanas.bench.run_bench(BenchConfig)`.
"""

from __future__ import annotations

import argparse

from qanas.bench.job import VELA_OPTIMISE, BenchConfig, run_bench
from qanas.cli.command import Command


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
    return run_bench(BenchConfig(
        model=args.model, target=args.target, runner=args.runner, out=args.out,
        repeats=args.repeats, warmup=args.warmup, flash=args.flash, no_flash=args.no_flash,
        per_layer=args.per_layer, seed=args.seed, force=args.force, optimise=args.optimise))


COMMAND = Command("bench", "run a compiled model on a runner (QEMU, host, board) and "
                  "compare with the host build", _add_arguments, _run)
