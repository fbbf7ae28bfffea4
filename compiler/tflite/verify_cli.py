"""``python -m compiler.tflite.verify model.onnx model.tflite``: the verification as a command.

Prints one JSON report: `verify_tflite`'s agreements and, with ``--layers``,
`verify_layers`' one row per quantized layer run alone.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict

from compiler.tflite.layers import verify_layers
from compiler.tflite.verify import ALL_BACKENDS, BACKENDS, verify_tflite
from compiler.tflite.verify import __doc__ as verify_doc


def main(argv: list[str] | None = None) -> int:
    """``python -m compiler.tflite.verify model.onnx model.tflite``: prints the report as JSON."""
    p = argparse.ArgumentParser(description=verify_doc.splitlines()[0])
    p.add_argument("onnx")
    p.add_argument("tflite")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--backend", action="append", choices=ALL_BACKENDS,
                   help=f"repeatable; default {' and '.join(BACKENDS)}")
    p.add_argument("--layers", action="store_true",
                   help="also run every quantized layer alone on the reference's inputs")
    args = p.parse_args(argv)
    backends = tuple(args.backend or BACKENDS)
    report = verify_tflite(args.onnx, args.tflite, seed=args.seed, backends=backends)
    result = report.to_dict()
    if args.layers:
        result["layers"] = [asdict(r) for r in verify_layers(args.onnx, seed=args.seed,
                                                             backends=backends)]
    print(json.dumps(result))
    return 0



if __name__ == "__main__":
    sys.exit(main())
