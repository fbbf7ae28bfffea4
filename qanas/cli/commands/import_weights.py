"""`qanas import-weights`: published weights as a standalone checkpoint.

Example:
    qanas import-weights squeezenas weights/lat_small.pth --arch lat_small \\
        --out runs/lat_small --json

Writes `DIR/standalone.pt` (`qanas-standalone/1`, as `qanas train` writes it), which
`qanas export DIR/standalone.pt --format onnx|qdq|tflite` and `qanas eval --checkpoint`
read. The model is the network's subnet on the space's released-code variant, so its
float outputs are the authors' (`qanas.train.import_squeezenas`).
"""

from __future__ import annotations

import argparse
import sys

from qanas.cli.command import Command

FAMILIES = ("squeezenas",)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    from qanas.space.squeezenas_published import PUBLISHED

    parser.add_argument("family", choices=FAMILIES, help="whose weights (squeezenas)")
    parser.add_argument("weights", help="the released state dict, e.g. weights/lat_small.pth")
    parser.add_argument("--arch", required=True, choices=sorted(PUBLISHED),
                        help="the published network the weights belong to")
    parser.add_argument("--data-root", help="the Cityscapes folder, recorded for int8 "
                        "calibration by `qanas export --format qdq|tflite` and `qanas eval`")
    parser.add_argument("--out", required=True, help="output directory")


def _run(args: argparse.Namespace) -> dict:
    from qanas.train.import_squeezenas import import_squeezenas
    from qanas.utils.io import check_output_dir

    out = check_output_dir(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"import {args.weights} as {args.arch} → {out}", file=sys.stderr)
    return import_squeezenas(args.weights, args.arch, out, args.data_root)


COMMAND = Command("import-weights", "published weights (SqueezeNAS) as a standalone checkpoint",
                  _add_arguments, _run)
