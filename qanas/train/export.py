"""Exporting a standalone checkpoint (`qanas train`) as float ONNX, int8 QDQ ONNX or TFLite.

`run_export(ExportConfig)` is the job of `qanas export` (its flags are the config's
fields): it refuses an `out` it may not write, then `export_standalone` writes the models `qanas.train.standalone_model.load_standalone_model`
rebuilds in one of `EXPORT_FORMATS`:

* ``onnx``: the float model (``torch.onnx``, opset 17, batch 1);
* ``qdq``: the int8 model (QAT weights, or post-training quantized) as QDQ ONNX
  (`qanas.quant.export_qdq`), ready for ``qanas compile``;
* ``tflite``: that QDQ graph as an int8 TFLite flatbuffer (`compiler.tflite`), ready for
  Vela and TFLite Micro.

Example:
    >>> run_export(ExportConfig(checkpoint="runs/sub0/standalone.pt", format="qdq",
    ...                         out="sub0.onnx"))  # doctest: +SKIP
    >>> export_standalone("runs/sub0/standalone.pt", "qdq", (64, 128), "sub0.onnx")  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from qanas.errors import ConfigError
from qanas.space.bits import arch_of, parse_config
from qanas.train.standalone_model import load_standalone_model
from qanas.utils.records import JsonRecord

EXPORT_FORMATS = ("onnx", "qdq", "tflite")


@dataclass(frozen=True, kw_only=True)
class ExportConfig(JsonRecord):
    """One export: the checkpoint, the format, the input size and the file written.

    Attributes:
        checkpoint: standalone.pt of `qanas train`.
        format: one of `EXPORT_FORMATS`.
        image_size: input (H, W) of the exported graph (None: the training size).
        out: the file to write.
        force: replace an existing `out`.
    """

    checkpoint: str
    format: str = "qdq"
    image_size: tuple[int, int] | None = None
    out: str
    force: bool = False

    def __post_init__(self):
        if self.format not in EXPORT_FORMATS:
            raise ConfigError(f"unknown export format {self.format!r}; choose one of "
                              f"{list(EXPORT_FORMATS)}")
        if self.image_size is not None:
            object.__setattr__(self, "image_size", tuple(int(v) for v in self.image_size))


def run_export(config: ExportConfig, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Exports `config.checkpoint` as `config` says; `log` receives one line naming the file.

    Returns:
        `export_standalone`'s result.

    Raises:
        ConfigError: `out` is a folder, or exists without `force`; an `image_size` below
            the space's total stride.
    """
    out = Path(config.out)
    if out.is_dir():
        raise ConfigError(f"--out {out} is a folder; name the file to write, e.g. {out}/model."
                          f"{'tflite' if config.format == 'tflite' else 'onnx'}")
    if out.exists() and not config.force:
        raise ConfigError(f"--out {out} exists; pass --force to replace it")
    if config.image_size is not None:
        from qanas.space import get_space
        from qanas.space.geometry import check_image_size
        from qanas.train.standalone import load_standalone

        arch = load_standalone(config.checkpoint)["arch"]
        check_image_size(get_space(arch.split(":", 1)[0]), config.image_size)
    if log is not None:
        log(f"export {config.checkpoint} as {config.format} → {out}")
    return export_standalone(config.checkpoint, config.format, config.image_size, out)


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
    loaded = load_standalone_model(path, int8=fmt != "onnx")
    size = tuple(int(v) for v in (image_size or loaded.image_size))
    # An input the model cannot take (e.g. below the released LR-ASPP's pool window) is
    # refused here with the space's message, not by the exporter's tracer.
    loaded.space.costs(arch_of(parse_config(loaded.arch)), size, loaded.num_classes)
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
