"""Exporting a standalone checkpoint (`qanas train`) as float ONNX, int8 QDQ ONNX or TFLite.

`load_standalone_model` rebuilds the trained subnet of a ``qanas-standalone/1``
checkpoint: the float model from its weights, and its int8 model, which is the QAT
model itself when the checkpoint has QAT weights, else the post-training quantized
float model calibrated on the checkpoint's own data (the same rule as `qanas train`).
`export_standalone` writes it in one of `EXPORT_FORMATS`:

* ``onnx``: the float model (``torch.onnx``, opset 17, batch 1);
* ``qdq``: the int8 model as QDQ ONNX (`qanas.quant.export_qdq`), ready for
  ``qanas compile``;
* ``tflite``: that QDQ graph as an int8 TFLite flatbuffer (`compiler.tflite`), ready for
  Vela and TFLite Micro.

Example:
    >>> export_standalone("runs/sub0/standalone.pt", "qdq", (64, 128), "sub0.onnx")  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

import torch
from torch import nn

from qanas.errors import ConfigError

EXPORT_FORMATS = ("onnx", "qdq", "tflite")


@dataclass
class StandaloneModel:
    """A standalone checkpoint's models and the data settings they were trained with.

    Attributes:
        arch: the architecture string.
        float_model: the float subnet (eval mode).
        int8_model: the Brevitas fake-quant model (eval mode).
        quantized: "qat" or "ptq" (how `int8_model` was obtained).
        num_classes, image_size: from the checkpoint.
        calibration: the batches the data settings give (for PTQ and as an export example).
    """

    arch: str
    float_model: nn.Module
    int8_model: nn.Module
    quantized: str
    num_classes: int
    image_size: tuple[int, int]
    calibration: list


def _calibration_batches(config, image_size: tuple[int, int], count: int) -> list:
    """The calibration batches `train_standalone` used (its dataset's calibration split)."""
    from qanas.data import make_loader
    from qanas.train.standalone import _supernet_meta, _train_config
    from qanas.train.trainer import build_datasets

    meta = _supernet_meta(config.supernet) if config.supernet else {}
    ds_meta = meta.get("dataset") or "synthetic"
    name = config.dataset or (ds_meta["name"] if isinstance(ds_meta, dict) else ds_meta)
    root = config.data_root or (ds_meta.get("root") if isinstance(ds_meta, dict) else None)
    tcfg = _train_config(config, meta.get("space") or config.arch.split(":", 1)[0],
                         name, None if name == "synthetic" else root, image_size)
    _, calib_set, _ = build_datasets(tcfg)
    loader = make_loader(calib_set, batch_size=config.batch_size, shuffle=False, seed=0)
    return list(islice(iter(loader), max(1, count)))


def load_standalone_model(path: str | Path) -> StandaloneModel:
    """Rebuilds the float and int8 models of the standalone checkpoint at ``path``.

    Raises:
        CheckpointError: not a standalone checkpoint, or weights that do not fit the
            architecture (the space changed since training: retrain with `qanas train`).
    """
    from qanas.errors import CheckpointError
    from qanas.quant import QuantSpec, calibrate, quantize_model
    from qanas.quant.qat import prepare_qat
    from qanas.space import get_space
    from qanas.space.base import SubnetConfig
    from qanas.train.standalone import StandaloneConfig, load_standalone

    payload: dict[str, Any] = load_standalone(path)
    config = StandaloneConfig.from_dict(payload["config"])
    arch = SubnetConfig.from_str(payload["arch"])
    num_classes = int(payload["num_classes"])
    image_size = (int(payload["image_size"][0]), int(payload["image_size"][1]))
    model = get_space(arch.space).build_supernet(num_classes).extract(arch)
    try:
        model.load_state_dict(payload["model"])
    except RuntimeError as err:
        raise CheckpointError(
            f"the weights in {path} do not fit {arch.space}'s {arch} ({str(err).splitlines()[0]}). "
            f"The space definition changed since training; retrain with `qanas train`") from err
    model.eval()
    spec = QuantSpec.from_dict(config.quant_spec) if config.quant_spec else QuantSpec()
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
                           image_size, calib)


def export_standalone(path: str | Path, fmt: str, image_size: tuple[int, int] | None,
                      out: str | Path) -> dict[str, Any]:
    """Writes the standalone checkpoint at ``path`` as ``fmt`` to ``out`` (atomically).

    Args:
        path: a ``standalone.pt`` from `qanas train`.
        fmt: one of `EXPORT_FORMATS`.
        image_size: input (H, W) of the exported graph (default: the training size).
        out: the file to write.

    Returns:
        {"arch", "format", "quantized", "image_size", "out"}.
    """
    from qanas.quant import export_qdq
    from qanas.utils.io import atomic_write

    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; choose one of {list(EXPORT_FORMATS)}")
    loaded = load_standalone_model(path)
    size = tuple(int(v) for v in (image_size or loaded.image_size))
    example = torch.zeros(1, 3, *size)
    out = Path(out)
    if fmt == "onnx":
        import io

        buf = io.BytesIO()
        with torch.no_grad():
            torch.onnx.export(loaded.float_model, (example,), buf, opset_version=17,
                              input_names=["input"], output_names=["logits"], dynamo=False)
        atomic_write(out, lambda f: f.write(buf.getvalue()))
    elif fmt == "qdq":
        export_qdq(loaded.int8_model, example, out)
    else:
        import tempfile

        from compiler.tflite import export_tflite

        with tempfile.TemporaryDirectory(prefix="qanas-export-") as tmp:
            export_tflite(export_qdq(loaded.int8_model, example, Path(tmp) / "model.onnx"), out)
    return {"arch": loaded.arch, "format": fmt, "quantized": loaded.quantized,
            "image_size": list(size), "out": str(out)}
