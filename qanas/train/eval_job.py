"""`run_eval(EvalConfig)`: float and int8 mIoU, MACs and parameters of one trained model.

The model is a subnet of a trained supernet (`supernet`, scored by `SubnetScorer` after
BatchNorm recalibration) or a standalone model of `qanas train` (`checkpoint`, scored on
its own validation split). `qanas eval` maps its flags one to one onto `EvalConfig`.

Example:
    >>> result = run_eval(EvalConfig(supernet="runs/sq/supernet.pt", subnet="min"))  # doctest: +SKIP
    >>> result["miou"], result["macs"]  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from qanas.errors import ConfigError
from qanas.utils.records import JsonRecord


@dataclass(frozen=True, kw_only=True)
class EvalConfig(JsonRecord):
    """One evaluation: the model, how it is quantized, and the data it is scored on.

    Attributes:
        supernet: checkpoint of `qanas train-supernet` (exactly one of it and `checkpoint`).
        checkpoint: standalone.pt of `qanas train`.
        subnet: architecture string or max | min | seed | random:SEED (supernet only);
            a mixed-precision one (``...@w8448...``) is scored with its per-conv bits.
        quant: "int8" (Brevitas fake-quant) or "fp32".
        val_fraction: share of the validation split used.
        calib_batches: batches for activation calibration (None: the QuantSpec's).
        bn_batches: training batches for BatchNorm recalibration.
        batch_size: images per batch.
        seed: seeds the training batch order.
        export_onnx: also write the int8 model as QDQ ONNX (batch 1) there.
    """

    supernet: str | None = None
    checkpoint: str | None = None
    subnet: str = "seed"
    quant: str = "int8"
    val_fraction: float = 0.2
    calib_batches: int | None = None
    bn_batches: int = 4
    batch_size: int = 8
    seed: int = 0
    export_onnx: str | None = None

    def __post_init__(self):
        if (self.supernet is None) == (self.checkpoint is None):
            raise ConfigError("evaluate either a supernet subnet (supernet=...) or a standalone "
                              "model (checkpoint=...), exactly one of them")
        if self.quant not in ("int8", "fp32"):
            raise ConfigError(f"quant must be 'int8' or 'fp32'; got {self.quant!r}")
        if self.export_onnx and self.quant != "int8":
            raise ConfigError("--export-onnx writes the int8 model; use it with --quant int8")
        if self.checkpoint is not None and self.export_onnx:
            raise ConfigError("--export-onnx with --checkpoint: use `qanas export CKPT --format "
                              "qdq --out FILE` to export a standalone model")
        if self.checkpoint is not None and self.subnet != "seed":
            raise ConfigError("--subnet picks a subnet of a supernet; a --checkpoint holds one "
                              "model already, drop --subnet")


def run_eval(config: EvalConfig, log: Callable[[str], None] | None = None) -> dict:
    """Scores the model of `config`; `log` receives one line saying what is scored.

    Returns:
        For a supernet subnet: {"arch", "miou", "miou_fp32", "macs", "params", "seconds",
        "per_class_iou", "quant", "val_images", "data_seconds"} (+ "onnx" with
        `export_onnx`); for a standalone model, `evaluate_standalone`'s result.
    """
    log = log or (lambda line: None)
    if config.checkpoint is not None:
        from qanas.train.standalone_model import evaluate_standalone

        log(f"eval {config.checkpoint} ({config.quant})")
        return evaluate_standalone(config.checkpoint, config.quant, config.val_fraction,
                                   config.batch_size)
    return _eval_subnet(config, log)


def _eval_subnet(config: EvalConfig, log: Callable[[str], None]) -> dict:
    from qanas.data import build_dataset, make_loader
    from qanas.quant import QuantSpec, export_qdq
    from qanas.score import SubnetScorer, cache_batches, val_subset
    from qanas.space.bits import arch_of, parse_config, searched_bits
    from qanas.space.geometry import check_image_size
    from qanas.train.checkpoint import load_supernet
    from qanas.train.standalone import subnet_quant_spec

    supernet, meta = load_supernet(config.supernet)
    named = parse_config(config.subnet, supernet.space)
    cfg = arch_of(named)  # the scorer sees the architecture; the bits go into the QuantSpec
    image_size = check_image_size(supernet.space, meta["image_size"],
                                  "the checkpoint's image size")
    dataset = meta.get("dataset") or {}
    name = dataset.get("name", "synthetic") if isinstance(dataset, dict) else str(dataset)
    root = dataset.get("root") if isinstance(dataset, dict) else None

    spec = None
    if config.quant == "int8":
        stored = QuantSpec.from_dict(meta.get("quant_spec")) if meta.get("quant_spec") else QuantSpec()
        if config.calib_batches is not None:
            stored = QuantSpec.from_dict({**stored.to_dict(),
                                          "calibration_batches": config.calib_batches})
        spec = stored if searched_bits(named) is None else subnet_quant_spec(
            stored, named, supernet.extract(cfg), image_size, supernet.num_classes)
    start = time.perf_counter()
    train = build_dataset(name, "train", image_size=image_size, root=root, seed=config.seed)
    val = build_dataset(name, "val", image_size=image_size, root=root, seed=config.seed)
    need = max(config.bn_batches, spec.calibration_batches if spec else 0)
    train_batches = cache_batches(make_loader(train, config.batch_size, shuffle=True,
                                              seed=config.seed), need)
    val_batches = val_subset(make_loader(val, config.batch_size, shuffle=False, seed=0),
                             config.val_fraction)
    log(f"eval {named.to_str()} ({config.quant}) on {len(val_batches)} val batches")
    scorer = SubnetScorer(supernet, train_batches, val_batches, spec,
                          bn_batches=config.bn_batches, ignore_index=val.ignore_index,
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
    if config.export_onnx:
        qmodel = scorer.quantize(scorer.prepare(cfg))
        result["onnx"] = str(export_qdq(qmodel, train_batches[0][0][:1], config.export_onnx))
    return result


__all__ = ["EvalConfig", "run_eval"]
