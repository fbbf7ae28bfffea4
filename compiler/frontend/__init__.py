"""Frontends: ONNX (float and QDQ int8) and ``torch.export`` → a Relax `ImportedModel`."""

from __future__ import annotations

from pathlib import Path

import onnx

from compiler.errors import InvalidModelError
from compiler.frontend.model import ImportedModel, TensorInfo
from compiler.frontend.onnx_import import check_onnx, import_onnx
from compiler.frontend.support import SUPPORTED_OPS, supported_ops_markdown


def load_model(model) -> ImportedModel:
    """Imports a model into Relax, checking it against the supported-op table first.

    Args:
        model: a path to an ``.onnx`` file, an ``onnx.ModelProto`` or a
            ``torch.export.ExportedProgram``.

    Returns:
        The `ImportedModel` (function ``main``, constants bound, float I/O; a QDQ
        model still carries its Q/DQ ops; `compiler.passes.lower_to_integer` lowers it).

    Raises:
        UnsupportedOpError: an operator or attribute outside `SUPPORTED_OPS`.
        InvalidModelError: the model fails ``onnx.checker`` or shape inference, or has
            dynamic input shapes.

    Example:
        >>> imported = load_model("net_qdq.onnx")  # doctest: +SKIP
        >>> imported.quantized  # doctest: +SKIP
        True
    """
    if isinstance(model, (str, Path)):
        path = Path(model)
        if not path.is_file():
            raise InvalidModelError(f"model file {str(path)!r} does not exist")
        return import_onnx(onnx.load(str(path)), source=str(path))
    if isinstance(model, onnx.ModelProto):
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
    "supported_ops_markdown",
]
