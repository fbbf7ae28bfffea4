"""Frontends: ONNX (float and QDQ int8) and ``torch.export`` → a Relax `ImportedModel`."""

from __future__ import annotations

from pathlib import Path

import onnx

from compiler.errors import InvalidModelError
from compiler.frontend.guard import stage_errors
from compiler.frontend.model import ImportedModel, TensorInfo
from compiler.frontend.onnx_import import check_onnx, import_onnx
from compiler.frontend.support import SUPPORTED_OPS, supported_ops_markdown
from compiler.onnx_file import read_onnx


def load_model(model) -> ImportedModel:
    """Imports a model into Relax, checking it against the supported-op table first.

    Args:
        model: a path to an ``.onnx`` file, an ``onnx.ModelProto`` or a
            ``torch.export.ExportedProgram``.

    Returns:
        The `ImportedModel` (function ``main``, constants bound, float I/O; a QDQ
        model still carries its Q/DQ ops; `compiler.passes.lower_to_integer` lowers it).

    Raises:
        UnsupportedOpError: an operator, attribute, opset or element type outside what
            qanas compiles (`SUPPORTED_OPS`, `compiler.frontend.validate`).
        InvalidModelError: the file is not a readable ONNX model (`read_onnx`), or the
            model fails ``onnx.checker``, shape inference or the value checks of
            `compiler.frontend.validate` (scales, zero points, axes, biases, attributes),
            or has dynamic input shapes.
        CompilerStageError: an unexpected library error during import (a bug), naming
            the node; the original exception is its ``__cause__``.

    Example:
        >>> imported = load_model("net_qdq.onnx")  # doctest: +SKIP
        >>> imported.quantized  # doctest: +SKIP
        True
    """
    if isinstance(model, (str, Path)):
        proto = read_onnx(model)
        with stage_errors("ONNX import", repr(str(model))):
            return import_onnx(proto, source=str(model))
    if isinstance(model, onnx.ModelProto):
        with stage_errors("ONNX import", "onnx.ModelProto"):
            return import_onnx(model, source="onnx.ModelProto")
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency of the project
        torch = None
    if torch is not None and isinstance(model, torch.export.ExportedProgram):
        from compiler.frontend.torch_import import import_exported_program

        return import_exported_program(model)
    raise InvalidModelError(
        f"cannot load a model of type {type(model).__name__}; pass a path to an .onnx file, "
        "an onnx.ModelProto or a torch.export.ExportedProgram")


__all__ = [
    "ImportedModel",
    "SUPPORTED_OPS",
    "TensorInfo",
    "check_onnx",
    "load_model",
    "read_onnx",
    "stage_errors",
    "supported_ops_markdown",
]
