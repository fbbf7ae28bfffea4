"""Exporting a standalone checkpoint (`qanas train`) as float ONNX, int8 QDQ ONNX or TFLite.

`export_standalone` writes the models `qanas.train.standalone_model.load_standalone_model`
rebuilds in one of `EXPORT_FORMATS`:

* ``onnx``: the float model (``torch.onnx``, opset 17, batch 1);
* ``qdq``: the int8 model (QAT weights, or post-training quantized) as QDQ ONNX
  (`qanas.quant.export_qdq`), ready for ``qanas compile``;
* ``tflite``: that QDQ graph as an int8 TFLite flatbuffer (`compiler.tflite`), ready for
  Vela and TFLite Micro.

Example:
    >>> export_standalone("runs/sub0/standalone.pt", "qdq", (64, 128), "sub0.onnx")  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from qanas.errors import ConfigError
from qanas.space.bits import arch_of, parse_config
from qanas.train.standalone_model import load_standalone_model

EXPORT_FORMATS = ("onnx", "qdq", "tflite")


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
