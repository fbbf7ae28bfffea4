"""Kernel scratch remembered on disk, across processes: a `ScratchCache` with a file behind it.

`compiler.workspace.ScratchCache` serves, within one process, the scratch of a kernel
structurally equal to one already lowered. A search that restarts, a demo run after a
search, or the ranks of a distributed search plan the same blocks again; scheduling and
lowering a fused inverted residual is the most expensive step of the plan-only mode.
`PersistentScratchCache` keeps every (kernel structure → bytes) pair it learns in a
JSON-lines file and reads the file back when it starts.

Keys. A kernel is keyed by its TVM structural hash (stable across processes: it hashes
structure and names, never addresses), the part of its name the schedule reads (whether
it is a fused inverted residual; a patch stage's whole name, which alone carries its
patch count), whether it is scheduled and the TVM target: the in-memory key of
`ScratchCache`. The file itself is named after `compiler_digest`:
the kernel generation, the TVM version and the source of every module whose output the
scratch depends on (the schedules, the TIR lowering, the workspace rounding). Any change
to one of them starts a new file, so a stale size is never served.

Concurrency. Each entry is one ``write`` of one line to a file opened for appending
(atomic for lines this short on a local file system), so several processes may share a
file; a torn or unreadable line is ignored when reading.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from compiler.workspace import ScratchCache

_COMPILER_DIR = Path(__file__).resolve().parent
SCRATCH_SOURCES = ("codegen", "workspace.py", "memory/buffer.py", "kernels/calls.py",
                   "version.py", "scratch_store.py")
"""Paths under ``compiler/`` whose source decides a kernel's scratch (`compiler_digest`)."""

CACHE_ENV = "QANAS_CACHE_DIR"
"""Environment variable naming the cache folder (`default_cache_dir`)."""


def default_cache_dir() -> Path:
    """``$QANAS_CACHE_DIR``, else ``$XDG_CACHE_HOME/qanas``, else ``~/.cache/qanas``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "qanas"


def compiler_digest() -> str:
    """16 hex digits naming this compiler's scratch rules (see the module docstring)."""
    import tvm

    from compiler.version import KERNEL_GENERATION

    digest = hashlib.sha256(f"generation={KERNEL_GENERATION};tvm={tvm.__version__}".encode())
    for name in SCRATCH_SOURCES:
        root = _COMPILER_DIR / name
        files = sorted(root.rglob("*.py")) if root.is_dir() else [root]
        for path in files:
            if path.is_file():
                digest.update(str(path.relative_to(_COMPILER_DIR)).encode())
                digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


class PersistentScratchCache(ScratchCache):
    """A `ScratchCache` that also reads and appends ``<folder>/scratch-<digest>.jsonl``.

    Args:
        folder: where the file lives (created if missing); `default_cache_dir` when None.
        max_entries: entries kept in memory (the file keeps them all).

    Attributes:
        path: the file of this compiler version.
        disk_hits: lookups served from the file (also counted in ``hits``).
    """

    def __init__(self, folder: str | os.PathLike | None = None, max_entries: int = 4096):
        super().__init__(max_entries)
        folder = Path(folder) if folder is not None else default_cache_dir()
        self.path = folder / f"scratch-{compiler_digest()}.jsonl"
        self.disk_hits = 0
        self._disk: dict[str, int] = {}
        if self.path.is_file():
            for line in self.path.read_text(errors="replace").splitlines():
                try:
                    entry = json.loads(line)
                    self._disk[str(entry["key"])] = int(entry["bytes"])
                except (ValueError, KeyError, TypeError):
                    continue  # a torn line of a killed writer

    @staticmethod
    def _disk_key(func, kernel: str, schedule: bool, tvm_target: dict) -> str:
        import tvm_ffi

        from compiler.codegen.schedule import FUSED_KERNEL

        # the name picks the schedule, as in ScratchCache._key: a fused block's row bands,
        # a patch stage's tiles (its patch count is in the name only)
        variant = kernel if kernel.startswith("patch") else bool(FUSED_KERNEL.match(kernel))
        text = json.dumps([str(tvm_ffi.structural_hash(func)), variant, bool(schedule),
                           sorted((str(k), str(v)) for k, v in tvm_target.items())])
        return hashlib.sha256(text.encode()).hexdigest()[:32]

    def get(self, func, kernel: str, schedule: bool, tvm_target: dict) -> int | None:
        """The scratch of a structurally equal kernel met in this process or in the file."""
        nbytes = super().get(func, kernel, schedule, tvm_target)
        if nbytes is not None:
            return nbytes
        nbytes = self._disk.get(self._disk_key(func, kernel, schedule, tvm_target))
        if nbytes is not None:
            self.misses -= 1
            self.hits += 1
            self.disk_hits += 1
            super().put(func, kernel, schedule, tvm_target, nbytes)
        return nbytes

    def put(self, func, kernel: str, schedule: bool, tvm_target: dict, nbytes: int) -> None:
        """Remembers the scratch of `func` in memory and appends it to the file."""
        super().put(func, kernel, schedule, tvm_target, nbytes)
        key = self._disk_key(func, kernel, schedule, tvm_target)
        if self._disk.get(key) == int(nbytes):
            return
        self._disk[key] = int(nbytes)
        line = json.dumps({"key": key, "bytes": int(nbytes)}) + "\n"
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line.encode())
            finally:
                os.close(fd)
        except OSError:
            pass  # a read-only or full cache folder costs speed, never a wrong answer
