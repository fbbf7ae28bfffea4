"""Atomic file writes and self-describing run directories.

Nothing the user produced may be lost to a crash: every checkpoint, JSON result
and database snapshot is written to a temporary file in the same directory,
flushed, fsynced and renamed over the destination (rename is atomic on POSIX).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from qanas.errors import QanasError


class OutputExistsError(FileExistsError):
    """Raised when a command would overwrite earlier results without `--force`."""


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], None]) -> Path:
    """Calls `write(f)` on a temporary file, then renames it to `path` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        # mkstemp creates 0600; results are ordinary files (0666 less the umask).
        os.fchmod(fd, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Writes `data` to `path` atomically."""
    return atomic_write(path, lambda f: f.write(data))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Writes `obj` as indented JSON to `path` atomically."""
    text = json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n"
    return atomic_write_bytes(path, text.encode())


def _json_default(obj: Any) -> Any:
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


class OutputNotADirectoryError(QanasError, NotADirectoryError):
    """Raised when `--out` (or a folder above it) names an existing file."""


def check_output_dir(path: str | os.PathLike, flag: str = "--out") -> Path:
    """Refuses an output folder that is, or lies under, an existing file; creates nothing.

    Args:
        path: the folder a command is about to write into.
        flag: the option that named it, for the message.

    Raises:
        OutputNotADirectoryError: `path` or one of its parents is a file (or another
            non-directory), with a message naming it and the fix.
    """
    path = Path(path)
    for folder in (path, *path.parents):
        if folder.exists() or folder.is_symlink():
            if not folder.is_dir():
                what = "is" if folder == path else f"lies under {folder}, which is"
                raise OutputNotADirectoryError(
                    f"{flag} {path} {what} an existing file, not a folder; qanas writes several "
                    f"files into {flag}, so pass a folder path (new or existing)")
            break
    return path


def prepare_output_dir(path: str | os.PathLike, force: bool, *, marker: str | None = None) -> Path:
    """Creates `path`, refusing to reuse a non-empty directory unless `force`.

    Args:
        path: the output directory.
        force: allow writing into a directory that already holds results.
        marker: if given, only this file's presence counts as "holds results".

    Raises:
        OutputNotADirectoryError: `path` is (or lies under) an existing file.
        OutputExistsError: `path` already holds results and `force` is false.
    """
    from qanas.utils.runlock import LOCK_NAME

    path = check_output_dir(path)
    if path.exists():
        # The run lock (`qanas.utils.runlock`) is taken before this check: not a result.
        occupied = ((path / marker).exists() if marker
                    else any(p.name != LOCK_NAME for p in path.iterdir()))
        if occupied and not force:
            raise OutputExistsError(
                f"{path} already holds results; pass --force to overwrite them, "
                f"or choose another --out directory"
            )
    path.mkdir(parents=True, exist_ok=True)
    return path


def versions() -> dict[str, str]:
    """Versions of the interpreter and of every library that shapes a result."""
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for mod in ("torch", "brevitas", "tvm", "onnx", "onnxruntime", "numpy", "pymoo"):
        try:
            out[mod] = str(__import__(mod).__version__)
        except Exception:  # noqa: BLE001 - a missing optional library is recorded as such
            out[mod] = "not installed"
    from importlib.metadata import PackageNotFoundError, version

    # Distributions read from their metadata: importing them is slow or has side effects.
    for key, dist in (("qanas", "qanas"), ("vela", "ethos-u-vela"),
                      ("tflite_micro", "tflite-micro"), ("litert", "ai-edge-litert")):
        try:
            out[key] = version(dist)
        except PackageNotFoundError:
            out[key] = "not installed"
    return out


def write_run_metadata(out_dir: str | os.PathLike, config: dict, seed: int | None) -> Path:
    """Writes `config.json` describing a run: resolved config, seed, versions, command line."""
    meta = {
        "config": config,
        "seed": seed,
        "versions": versions(),
        "argv": sys.argv,
    }
    return atomic_write_json(Path(out_dir) / "config.json", meta)


def file_sha256(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """sha256 hex digest of a file (the provenance of a checkpoint)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def source_commit(path: str = "runtime/c/kernels") -> dict:
    """The repository's commit and whether `path` (relative to the repository) differs
    from it: what a measured figure was built from ({"commit": "", ...} outside git)."""
    import subprocess

    root = Path(__file__).resolve().parents[2]

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                              check=False).stdout.strip()

    return {"commit": git("rev-parse", "--short", "HEAD"),
            "modified": bool(git("status", "--porcelain", path))}
