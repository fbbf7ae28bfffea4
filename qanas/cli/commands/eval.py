"""`qanas eval`: float and int8 mIoU, MACs and parameters of one subnet of a trained supernet,
or of a standalone model trained with `qanas train` (``--checkpoint``)."""

from __future__ import annotations

import argparse
import sys

from qanas.cli.command import Command


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--supernet", help="checkpoint from `qanas train-supernet`")
    source.add_argument("--checkpoint", help="standalone.pt from `qanas train`: scores that "
                        "model (its QAT weights, or post-training int8) on its own val split")
    parser.add_argument("--subnet", default="seed",
                        help="architecture string, or max | min | seed | random:SEED; a "
                             "mixed-precision one (...@w8448..., from `qanas search --bits "
                             "w4w8`) is scored with its per-conv weight bits")
    parser.add_argument("--quant", choices=("int8", "fp32"), default="int8",
                        help="score the Brevitas int8 fake-quant model or the float one")
    parser.add_argument("--val-fraction", type=float, default=0.2,
                        help="share of the validation split used (default 0.2)")
    parser.add_argument("--calib-batches", type=int, default=None,
                        help="batches for activation calibration (default: QuantSpec's)")
    parser.add_argument("--bn-batches", type=int, default=4,
                        help="training batches for BatchNorm recalibration")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0, help="seeds the training batch order")
    parser.add_argument("--export-onnx", metavar="PATH", default=None,
                        help="also write the int8 model as ONNX QDQ (batch 1) to PATH")


def _run(args: argparse.Namespace) -> dict:
    from qanas.train.eval_job import EvalConfig, run_eval

    config = EvalConfig(supernet=args.supernet, checkpoint=args.checkpoint, subnet=args.subnet,
                        quant=args.quant, val_fraction=args.val_fraction,
                        calib_batches=args.calib_batches, bn_batches=args.bn_batches,
                        batch_size=args.batch_size, seed=args.seed, export_onnx=args.export_onnx)
    return run_eval(config, log=lambda line: print(line, file=sys.stderr))


COMMAND = Command("eval", "float and int8 mIoU, MACs and params of one subnet",
                  _add_arguments, _run)
