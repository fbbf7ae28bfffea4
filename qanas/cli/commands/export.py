"""`qanas export`: a standalone checkpoint as float ONNX, int8 QDQ ONNX or int8 TFLite.

The flags map one to one onto `qanas.train.export.ExportConfig`; the job is
`qanas.train.export.run_export`.
"""

from __future__ import annotations

import argparse
import sys

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
    from qanas.train.export import ExportConfig, run_export

    config = ExportConfig(checkpoint=args.checkpoint, format=args.format,
                          image_size=args.image_size, out=args.out, force=args.force)
    return run_export(config, log=lambda line: print(line, file=sys.stderr))


COMMAND = Command("export", "a standalone checkpoint as float ONNX, int8 QDQ ONNX or TFLite",
                  _add_arguments, _run)
