"""`qanas export`: a standalone checkpoint as float ONNX, int8 QDQ ONNX or int8 TFLite."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from qanas.cli.command import Command


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    from qanas.train.export import EXPORT_FORMATS

    parser.add_argument("checkpoint", help="standalone.pt from `qanas train`")
    parser.add_argument("--format", choices=EXPORT_FORMATS, default="qdq",
                        help="onnx: the float model; qdq: the int8 model as QDQ ONNX (for "
                             "`qanas compile`); tflite: int8 TFLite (for Vela / TFLite Micro)")
    parser.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"), default=None,
                        help="input size of the exported graph (default: the training size)")
    parser.add_argument("--out", required=True, help="the file to write")
    parser.add_argument("--force", action="store_true", help="replace an existing --out file")


def _run(args: argparse.Namespace) -> dict:
    from qanas.errors import ConfigError
    from qanas.space import get_space
    from qanas.space.geometry import check_image_size
    from qanas.train.export import export_standalone
    from qanas.train.standalone import load_standalone

    out = Path(args.out)
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder; name the file to write, e.g. {out}/model."
                          f"{'tflite' if args.format == 'tflite' else 'onnx'}")
    if out.exists() and not args.force:
        raise ConfigError(f"--out {out} exists; pass --force to replace it")
    if args.image_size is not None:
        arch = load_standalone(args.checkpoint)["arch"]
        check_image_size(get_space(arch.split(":", 1)[0]), args.image_size)
    print(f"export {args.checkpoint} as {args.format} → {out}", file=sys.stderr)
    return export_standalone(args.checkpoint, args.format, args.image_size, out)


COMMAND = Command("export", "a standalone checkpoint as float ONNX, int8 QDQ ONNX or TFLite",
                  _add_arguments, _run)
