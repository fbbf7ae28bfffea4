"""Reading a user's ``.onnx`` file: every way a file can be wrong gets a one-line error.

`read_onnx` is the only place the compiler opens a model file (the frontend, the NumPy
reference, the TFLite exporter and Vela's flow all read through it); it imports no TVM. Before protobuf sees
the bytes it refuses a missing path, a directory, an empty file and a Git LFS
pointer; a parse failure (random bytes, a truncated download) becomes an
`InvalidModelError`, not protobuf's ``DecodeError``. External data (weights stored
beside the model, ``onnx.save(..., save_as_external_data=True)``) must lie inside the
model's folder and exist with enough bytes; a path that escapes the folder
(``../``, an absolute path, a symlink out) is refused before anything is read.
"""

from __future__ import annotations

from pathlib import Path

import onnx
from onnx import external_data_helper

from compiler.errors import InvalidModelError

#: The first bytes of a Git LFS pointer file (what a clone without ``git lfs`` holds).
LFS_POINTER_PREFIX = b"version https://git-lfs"


def _one_line(text: str, limit: int = 160) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _graph_tensors(graph: onnx.GraphProto):
    yield from graph.initializer
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("t"):
                yield attr.t
            yield from attr.tensors
            if attr.HasField("g"):
                yield from _graph_tensors(attr.g)
            for sub in attr.graphs:
                yield from _graph_tensors(sub)


def _external_tensors(model: onnx.ModelProto):
    for tensor in _graph_tensors(model.graph):
        if external_data_helper.uses_external_data(tensor):
            yield tensor


def check_external_data(model: onnx.ModelProto, folder: Path, source: str) -> None:
    """Checks that every external-data file of ``model`` is inside ``folder`` and complete.

    Raises:
        InvalidModelError: a location is absolute, leaves ``folder`` (``..`` or a
            symlink), is missing, or is shorter than the offset + length it declares.
    """
    root = folder.resolve()
    for tensor in _external_tensors(model):
        info = external_data_helper.ExternalDataInfo(tensor)
        where = f"tensor {tensor.name!r} of {source}"
        location = Path(info.location)
        if not info.location or location.is_absolute() or location.drive:
            raise InvalidModelError(
                f"{where} stores its data at {info.location!r}, not a path relative to the "
                "model's folder; keep the external-data file beside the model")
        target = (root / location).resolve()
        if not target.is_relative_to(root):
            raise InvalidModelError(
                f"{where} points outside the model's folder ({info.location!r}); refusing to "
                "read it. Move the data file next to the model and re-save it")
        if not target.is_file():
            raise InvalidModelError(
                f"{where} needs the external-data file {info.location!r}, which is missing from "
                f"{folder}; copy it next to the model")
        needed = (info.offset or 0) + (info.length or 0)
        if target.stat().st_size < needed:
            raise InvalidModelError(
                f"{where} needs {needed} bytes of {info.location!r} but the file has "
                f"{target.stat().st_size}: the data file is truncated; copy it again")


def read_onnx(path: str | Path) -> onnx.ModelProto:
    """Reads an ONNX model file with its external data, refusing broken files by name.

    Args:
        path: the ``.onnx`` file.

    Returns:
        The parsed ``onnx.ModelProto`` with external data loaded (not yet checked: see
        `compiler.frontend.check_onnx`).

    Raises:
        InvalidModelError: the path is missing or a directory, the file is empty, a Git LFS
            pointer, not protobuf / truncated, or its external data is missing or outside
            the model's folder. The message is one line and says what to do.

    Example:
        >>> model = read_onnx("net_qdq.onnx")  # doctest: +SKIP
    """
    path = Path(path)
    if path.is_dir():
        raise InvalidModelError(
            f"model path {str(path)!r} is a directory; pass the .onnx file inside it")
    if not path.is_file():
        raise InvalidModelError(f"model file {str(path)!r} does not exist")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise InvalidModelError(f"cannot read model file {str(path)!r}: "
                                f"{_one_line(err.strerror or err)}") from err
    if not data:
        raise InvalidModelError(
            f"model file {str(path)!r} is empty (0 bytes): an interrupted download or export; "
            "export or download it again")
    if data.startswith(LFS_POINTER_PREFIX):
        raise InvalidModelError(
            f"model file {str(path)!r} is a Git LFS pointer, not the model; fetch the real file "
            "with `git lfs pull`")
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except Exception as err:  # protobuf's DecodeError, or a RuntimeWarning from the C parser
        raise InvalidModelError(
            f"model file {str(path)!r} is not an ONNX model: protobuf cannot parse its "
            f"{len(data)} bytes (a truncated download or another kind of file); export or "
            "download it again") from err
    if not model.HasField("graph") or not model.opset_import:
        raise InvalidModelError(
            f"model file {str(path)!r} is not an ONNX model: it parses as protobuf but has no "
            "graph or no opset_import (a truncated download or another kind of file); export "
            "or download it again")
    check_external_data(model, path.parent, repr(str(path)))
    try:
        external_data_helper.load_external_data_for_model(model, str(path.parent))
    except Exception as err:  # pragma: no cover - check_external_data refuses the known cases
        raise InvalidModelError(f"cannot load the external data of {str(path)!r}: "
                                f"{_one_line(err)}") from err
    return model


__all__ = ["LFS_POINTER_PREFIX", "check_external_data", "read_onnx"]
