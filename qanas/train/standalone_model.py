"""A trained standalone subnet (`qanas train`): its models rebuilt, and scored.

`load_standalone_model` rebuilds the subnet of a ``qanas-standalone/1`` checkpoint:
the float model from its weights, and its int8 model, which is the QAT model itself
when the checkpoint has QAT weights, else the post-training quantized float model
calibrated on the batches `qanas train` calibrated on (the same rule as training).
`evaluate_standalone` scores it on its own validation split the way `qanas eval
--supernet` scores a subnet: float and int8 mIoU, MACs and parameters.

Example:
    >>> evaluate_standalone("runs/sub0/standalone.pt")["miou"]  # doctest: +SKIP
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from torch import nn


@dataclass
class StandaloneModel:
    """A standalone checkpoint's models and the data settings they were trained with.

    Attributes:
        arch: the architecture string.
        float_model: the float subnet (eval mode).
        int8_model: the Brevitas fake-quant model (eval mode), or None when loaded float only.
        quantized: "qat" or "ptq" (how `int8_model` was obtained), or None.
        num_classes, image_size: from the checkpoint.
        calibration: the batches the int8 model was calibrated on.
        config: the checkpoint's `StandaloneConfig`.
        space: the space the model is built on (`standalone_space`).
    """

    arch: str
    float_model: nn.Module
    int8_model: nn.Module | None
    quantized: str | None
    num_classes: int
    image_size: tuple[int, int]
    calibration: list
    config: Any = None
    space: Any = None


def _calibration_batches(config, image_size: tuple[int, int], count: int) -> list:
    """The calibration batches `train_standalone` used (its dataset's calibration split)."""
    from qanas.data import make_loader

    _, calib_set, _ = _datasets(config, image_size)
    loader = make_loader(calib_set, batch_size=config.batch_size, shuffle=False, seed=0)
    return list(islice(iter(loader), max(1, count)))


def standalone_space(payload: dict[str, Any]):
    """The space a standalone checkpoint's model is built on: the registered space, with
    the architecture options it records (``space_options``: the released-code details of
    weights from `qanas import-weights`)."""
    from qanas.errors import CheckpointError
    from qanas.space import get_space

    space = get_space(payload["arch"].split(":", 1)[0])
    options = payload.get("space_options")
    if not options:
        return space
    if not hasattr(space, "with_arch_options"):
        raise CheckpointError(f"the checkpoint records architecture options {options}, which "
                              f"space {space.name!r} does not take")
    return space.with_arch_options(options)


def load_standalone_model(path: str | Path, int8: bool = True) -> StandaloneModel:
    """Rebuilds the float and int8 models of the standalone checkpoint at ``path``.

    Args:
        path: a ``standalone.pt``.
        int8: also build (and calibrate, without QAT weights) the int8 model; False loads
            the float model only and needs no data.

    Raises:
        CheckpointError: not a standalone checkpoint, or weights that do not fit the
            architecture (the space changed since training: retrain with `qanas train`).
    """
    from qanas.errors import CheckpointError
    from qanas.quant import QuantSpec, calibrate, quantize_model
    from qanas.quant.subnet_qat import prepare_qat
    from qanas.space.bits import arch_of, parse_config
    from qanas.supernet import build_supernet
    from qanas.train.standalone import StandaloneConfig, load_standalone, subnet_quant_spec

    payload: dict[str, Any] = load_standalone(path)
    config = StandaloneConfig.from_dict(payload["config"])
    arch = parse_config(payload["arch"])
    num_classes = int(payload["num_classes"])
    image_size = (int(payload["image_size"][0]), int(payload["image_size"][1]))
    space = standalone_space(payload)
    model = build_supernet(space, num_classes).extract(arch_of(arch))
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as err:
        raise CheckpointError(
            f"the weights in {path} do not fit {arch.space}'s {arch} ({str(err).splitlines()[0]}). "
            f"The space definition changed since training; retrain with `qanas train`") from err
    model.eval()
    if not int8:
        return StandaloneModel(arch.to_str(), model, None, None, num_classes, image_size, [],
                               config, space)
    spec = subnet_quant_spec(QuantSpec.from_dict(config.quant_spec) if config.quant_spec else
                             QuantSpec(), arch, model, image_size, num_classes)
    calib = _calibration_batches(config, image_size, config.calib_batches)
    if payload.get("qat_model") is not None:
        int8_model = prepare_qat(model, spec, calib)
        int8_model.load_state_dict(payload["qat_model"])
        quantized = "qat"
    else:
        int8_model = quantize_model(model, spec)
        calibrate(int8_model, calib, max_batches=spec.calibration_batches)
        quantized = "ptq"
    return StandaloneModel(arch.to_str(), model, int8_model.eval(), quantized, num_classes,
                           image_size, calib, config, space)




def _datasets(config, image_size: tuple[int, int]):
    """(train, calibration, val) datasets of the checkpoint's data settings."""
    from qanas.train.standalone import _supernet_meta, _train_config
    from qanas.train.trainer import build_datasets

    meta = _supernet_meta(config.supernet) if config.supernet else {}
    ds_meta = meta.get("dataset") or "synthetic"
    name = config.dataset or (ds_meta["name"] if isinstance(ds_meta, dict) else ds_meta)
    root = config.data_root or (ds_meta.get("root") if isinstance(ds_meta, dict) else None)
    tcfg = _train_config(config, meta.get("space") or config.arch.split(":", 1)[0],
                         name, None if name == "synthetic" else root, image_size)
    return build_datasets(tcfg)


def evaluate_standalone(path: str | Path, quant: str = "int8", val_fraction: float = 0.2,
                        batch_size: int = 8) -> dict[str, Any]:
    """Float and int8 mIoU, MACs and parameters of the standalone checkpoint at ``path``.

    Args:
        path: a ``standalone.pt`` from `qanas train`.
        quant: "int8" (``miou`` is the int8 model's) or "fp32" (``miou`` is the float one's).
        val_fraction: share of the checkpoint's validation split used.
        batch_size: images per evaluation batch.

    Returns:
        The keys of `qanas eval --supernet`: arch, miou, miou_fp32, macs, params, seconds,
        per_class_iou, quant, val_images, quantized.
    """
    import torch

    from qanas.data import make_loader
    from qanas.errors import ConfigError
    from qanas.score import val_subset
    from qanas.score.miou import evaluate_miou
    from qanas.space.bits import arch_of, parse_config

    if quant not in ("int8", "fp32"):
        raise ConfigError(f"quant must be 'int8' or 'fp32', got {quant!r}")
    start = time.perf_counter()
    loaded = load_standalone_model(path)
    _, _, val_set = _datasets(loaded.config, loaded.image_size)
    val = val_subset(make_loader(val_set, batch_size, shuffle=False, seed=0), val_fraction)
    ignore = int(getattr(val_set, "ignore_index", 255))
    names = getattr(val_set, "class_names", None)
    with torch.no_grad():
        fp32 = evaluate_miou(loaded.float_model, val, loaded.num_classes, ignore,
                             class_names=names)
        int8 = (evaluate_miou(loaded.int8_model, val, loaded.num_classes, ignore,
                              class_names=names) if quant == "int8" else fp32)
    arch = arch_of(parse_config(loaded.arch))
    costs = loaded.space.costs(arch, loaded.image_size, loaded.num_classes)
    return {"arch": loaded.arch, "miou": _num(int8["miou"]), "miou_fp32": _num(fp32["miou"]),
            "macs": int(costs["macs"]), "params": int(costs["params"]),
            "seconds": round(time.perf_counter() - start, 3),
            "per_class_iou": _per_class(int8, names), "quant": quant,
            "quantized": loaded.quantized if quant == "int8" else None,
            "val_images": sum(int(batch[0].shape[0]) for batch in val)}


def _num(value) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value


def _per_class(result: dict, names) -> dict | list:
    """Per-class IoU, keyed by class name when the dataset names its classes."""
    values = result["per_class_iou"]
    return dict(zip(names, values, strict=True)) if names else values
