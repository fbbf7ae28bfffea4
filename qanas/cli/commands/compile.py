"""`qanas compile MODEL.onnx --target T --out DIR`: an ONNX model → a standalone C project."""

from __future__ import annotations

import argparse

from qanas.cli.command import Command


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="ONNX model (float, or int8 QDQ as exported by Brevitas)")
    parser.add_argument("--target", default="host",
                        help="registered target (`qanas targets` lists them); default host")
    parser.add_argument("--out", required=True, help="output directory of the C project")
    parser.add_argument("--planner", default="greedy", help="memory planner (default greedy)")
    parser.add_argument("--prefix", default="qanas_model",
                        help="C symbol prefix of the model API (default qanas_model)")
    parser.add_argument("--force", action="store_true",
                        help="replace a project qanas wrote in --out (a folder without its "
                             ".qanas-project marker is refused, untouched)")
    parser.add_argument("--optimise", choices=("size", "speed"), default="size",
                        help="size: every memory technique, the smallest arena (default); "
                             "speed: no technique that recomputes MACs")
    parser.add_argument("--output", choices=("logits", "argmax"), default="logits",
                        help="logits: the model's output (default); argmax: a uint8 class "
                             "map from a fused argmax (the logits never exist in full)")


def _run(args: argparse.Namespace) -> dict:
    from pathlib import Path

    from compiler.driver import compile_model

    if Path(args.model).is_dir():
        raise FileNotFoundError(f"model {args.model} is a folder; pass the .onnx file to "
                                "compile (e.g. the QDQ model `qanas export` or `qanas eval "
                                "--export-onnx` wrote)")
    if not Path(args.model).exists():
        raise FileNotFoundError(f"model {args.model} not found")
    result = compile_model(args.model, args.target, args.out, planner=args.planner,
                           force=args.force, prefix=args.prefix, optimise=args.optimise,
                           output=args.output)
    summary = result.summary()
    if result.float_kernels:
        summary["float_kernels"] = sorted(result.float_kernels)
    return {**summary, "out_dir": str(result.out_dir), "target": result.target}


COMMAND = Command("compile", "compile an ONNX model into a standalone int8 C project",
                  _add_arguments, _run)
