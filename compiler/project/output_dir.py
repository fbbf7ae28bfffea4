"""The folders qanas writes (C projects, NPU bundles) and the marker that makes them its own.

Every such folder gets a small JSON marker, `MARKER_FILE` (``{"tool": "qanas",
"version": ..., "kind": ...}``), written before anything else, so even an interrupted
write leaves a folder qanas recognises. ``--force`` (``force=True``) replaces a folder
only when it is empty or carries a marker of the same kind; a folder with anything else
in it is refused and left untouched, so a mistyped ``--out`` never deletes a user's
files. ``--out`` naming a file, or a folder under a file, is refused too.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from pathlib import Path

from compiler.errors import CompilerError

MARKER_FILE = ".qanas-project"
"""The marker's file name inside a folder qanas wrote."""

PROJECT_KIND = "c-project"
"""Marker kind of a compiled C project (`compiler.compile_model`)."""

BUNDLE_KIND = "npu-bundle"
"""Marker kind of a TFLite Micro + Ethos-U bundle (`compiler.npu.write_npu_bundle`)."""


class OutputDirExistsError(CompilerError, FileExistsError):
    """The output folder is not empty, and `force` was not given or cannot apply to it."""


class OutputIsAFileError(CompilerError, NotADirectoryError):
    """The output folder, or a folder above it, is an existing file."""


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("qanas")
    except PackageNotFoundError:
        return "unknown"


def write_marker(folder: str | Path, kind: str) -> Path:
    """Writes the marker of `kind` into `folder` (which must exist); returns its path."""
    path = Path(folder) / MARKER_FILE
    path.write_text(json.dumps({"tool": "qanas", "version": _version(), "kind": kind},
                               indent=2, sort_keys=True) + "\n")
    return path


def read_marker(folder: str | Path) -> dict | None:
    """The marker of `folder` as a dict, or None when it has none (or not a valid one)."""
    try:
        marker = json.loads((Path(folder) / MARKER_FILE).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return marker if isinstance(marker, dict) and marker.get("tool") == "qanas" else None


def check_output_dir(folder: str | Path, force: bool, kind: str, flag: str = "--out") -> Path:
    """Refuses an output folder qanas may not write into; changes nothing on disk.

    Accepted: a folder that does not exist, an empty folder, and, with `force`, a folder
    whose marker has this `kind`.

    Args:
        folder: the folder about to be written.
        force: the caller's ``--force``.
        kind: the marker kind the folder must carry to be replaced (`PROJECT_KIND`...).
        flag: the option that named the folder, for the messages.

    Raises:
        OutputIsAFileError: `folder`, or a folder above it, is a file.
        OutputDirExistsError: `folder` holds files and `force` is False, or it holds
            files and no qanas marker of `kind` (then even `force` is refused).

    Example:
        >>> check_output_dir("build/net", force=False, kind=PROJECT_KIND)  # doctest: +SKIP
        PosixPath('build/net')
    """
    folder = Path(folder)
    for path in (folder, *folder.parents):
        if path.exists() or path.is_symlink():
            if not path.is_dir():
                where = "is" if path == folder else f"lies under {path}, which is"
                raise OutputIsAFileError(
                    f"{flag} {folder} {where} an existing file, not a folder; pass the path "
                    "of a new or empty folder")
            break
    if not folder.exists() or not any(folder.iterdir()):
        return folder
    marker = read_marker(folder)
    if marker is None or marker.get("kind") != kind:
        what = ("no qanas marker" if marker is None
                else f"the marker of a qanas {marker.get('kind')!r}, not a {kind!r}")
        raise OutputDirExistsError(
            f"{flag} {folder} is not empty and has {what} ({MARKER_FILE}), so qanas did not "
            f"write it{'; --force is refused' if force else ''}: nothing was changed. Pass "
            f"a new or empty folder as {flag}, or empty this one yourself")
    if not force:
        raise OutputDirExistsError(
            f"{flag} {folder} already holds a qanas {kind}; pass --force (force=True) to "
            f"replace it, or choose another {flag}")
    return folder


def prepare_output_dir(folder: str | Path, force: bool, kind: str,
                       generated: Iterable[str] = (), flag: str = "--out") -> Path:
    """`check_output_dir`, then removes the `generated` subfolders and marks the folder.

    Only the subfolders named in `generated` (those the writer recreates, e.g.
    ``kernels``) are deleted, and only in a folder qanas marked (a symbolic link among
    them is unlinked, not followed); other files are left for the writer to overwrite. The marker is written first, so an interrupted write
    still leaves a folder that a later ``--force`` may replace.

    Returns:
        The folder, created if needed.
    """
    folder = check_output_dir(folder, force, kind, flag)
    if folder.exists():
        for sub in generated:
            path = folder / sub
            try:
                if path.is_symlink() or path.is_file():
                    path.unlink()  # a link is removed, never followed into what it points at
                elif path.exists():
                    shutil.rmtree(path)
            except OSError as exc:
                raise CompilerError(f"cannot remove {path} to rewrite the project: "
                                    f"{exc.strerror or exc}; fix its permissions or choose "
                                    f"another {flag}") from None
    folder.mkdir(parents=True, exist_ok=True)
    write_marker(folder, kind)
    return folder
