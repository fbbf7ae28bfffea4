"""`qanas eval`: float and int8 mIoU, MACs and parameters of one subnet of a trained supernet,
or of a standalone model trained with `qanas train` (``--checkpoint``)."""

from __future__ import annotations

import argparse
import sys
import time

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
    from qanas.data import build_dataset, make_loader
    from qanas.errors import ConfigError
    from qanas.quant import QuantSpec, export_qdq
    from qanas.score import SubnetScorer, cache_batches, val_subset
    from qanas.space.bits import arch_of, parse_config, searched_bits
    from qanas.space.geometry import check_image_size
    from qanas.train.checkpoint import load_supernet
    from qanas.train.standalone import subnet_quant_spec

    if args.export_onnx and args.quant != "int8":
        raise ConfigError("--export-onnx writes the int8 model; use it with --quant int8")
    if args.checkpoint:
        return _run_standalone(args)
    supernet, meta = load_supernet(args.supernet)
    named = parse_config(args.subnet, supernet.space)
    cfg = arch_of(named)  # the scorer sees the architecture; the bits go into the QuantSpec
    image_size = check_image_size(supernet.space, meta["image_size"],
                                  "the checkpoint's image size")
    dataset = meta.get("dataset") or {}
    name = dataset.get("name", "synthetic") if isinstance(dataset, dict) else str(dataset)
    root = dataset.get("root") if isinstance(dataset, dict) else None

    spec = None
    if args.quant == "int8":
        stored = QuantSpec.from_dict(meta.get("quant_spec")) if meta.get("quant_spec") else QuantSpec()
        if args.calib_batches is not None:
            stored = QuantSpec.from_dict({**stored.to_dict(),
                                          "calibration_batches": args.calib_batches})
        spec = stored if searched_bits(named) is None else subnet_quant_spec(
            stored, named, supernet.extract(cfg), image_size, supernet.num_classes)
    start = time.perf_counter()
    train = build_dataset(name, "train", image_size=image_size, root=root, seed=args.seed)
    val = build_dataset(name, "val", image_size=image_size, root=root, seed=args.seed)
    need = max(args.bn_batches, spec.calibration_batches if spec else 0)
    train_batches = cache_batches(make_loader(train, args.batch_size, shuffle=True,
                                              seed=args.seed), need)
    val_batches = val_subset(make_loader(val, args.batch_size, shuffle=False, seed=0),
                             args.val_fraction)
    print(f"eval {named.to_str()} ({args.quant}) on {len(val_batches)} val batches",
          file=sys.stderr)
    scorer = SubnetScorer(supernet, train_batches, val_batches, spec,
                          bn_batches=args.bn_batches, ignore_index=val.ignore_index,
                          image_size=image_size)
    score = scorer.score(cfg)
    result = {
        "arch": named.to_str(),
        "miou": score.miou,
        "miou_fp32": score.miou_fp32,
        "macs": score.macs,
        "params": score.params,
        "seconds": round(score.seconds, 3),
        "per_class_iou": dict(zip(val.class_names, score.per_class, strict=True)),
        "quant": spec.to_dict() if spec else None,
        "val_images": sum(int(batch[0].shape[0]) for batch in val_batches),
        "data_seconds": round(time.perf_counter() - start - score.seconds, 3),
    }
    if args.export_onnx:
        qmodel = scorer.quantize(scorer.prepare(cfg))
        result["onnx"] = str(export_qdq(qmodel, train_batches[0][0][:1], args.export_onnx))
    return result


def _run_standalone(args: argparse.Namespace) -> dict:
    """`qanas eval --checkpoint`: a standalone model scored on its own validation split."""
    from qanas.errors import ConfigError
    from qanas.train.standalone_model import evaluate_standalone

    if args.export_onnx:
        raise ConfigError("--export-onnx with --checkpoint: use `qanas export CKPT --format qdq "
                          "--out FILE` to export a standalone model")
    if args.subnet != "seed":
        raise ConfigError("--subnet picks a subnet of a supernet; a --checkpoint holds one "
                          "model already, drop --subnet")
    print(f"eval {args.checkpoint} ({args.quant})", file=sys.stderr)
    return evaluate_standalone(args.checkpoint, args.quant, args.val_fraction, args.batch_size)


COMMAND = Command("eval", "float and int8 mIoU, MACs and params of one subnet",
                  _add_arguments, _run)
