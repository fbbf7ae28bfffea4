"""One process per run folder: an exclusive `flock` on ``DIR/.qanas.lock``.

Two `qanas search --resume` runs on one folder would mix their metric sets in the
archive and overwrite each other's `front.json`; two `train-supernet` runs would
overwrite each other's checkpoints. Every command that writes a run folder takes
this lock first, and a second one is refused with the holder's PID, command and
start time.

Why `flock`: the kernel drops the lock when the holding process dies, however it
dies (SIGKILL, OOM, a power cut on the next boot), so a stale lock file never
blocks a rerun; there is no PID file to clean up and no "is that PID still alive"
guess. The file itself stays in the folder between runs; only the lock on it
matters, and its text (PID, start time, command) is just for the message. Network
filesystems: Linux maps `flock` onto NFS byte-range locks, which NFSv4 honours
across machines; older NFS mounts with ``nolock`` do not lock at all.

Example:
    >>> with lock_run_dir("runs/s", "search"):  # doctest: +SKIP
    ...     run_search(...)
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import json
import os
import sys
from pathlib import Path

from qanas.errors import QanasError

LOCK_NAME = ".qanas.lock"


class RunLockedError(QanasError, RuntimeError):
    """Another live process holds the run folder's lock."""


class RunLock:
    """The held lock of one run folder; `release` (or leaving the `with`) frees it.

    Args:
        folder: the run folder (created if missing).
        command: what this process is, for the message a second process prints
            (e.g. "search"); the command line is recorded as well.
    """

    def __init__(self, folder: str | os.PathLike, command: str):
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.command = command
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        """Takes the lock without waiting; raises `RunLockedError` naming the holder."""
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise RunLockedError(
                f"{self.folder} is in use by another qanas process ({_describe(holder)}); "
                f"two runs on one folder would overwrite each other's results. Wait for it "
                f"to finish (or stop it), or pass another --out"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        holder = {"pid": os.getpid(), "command": self.command,
                  "started": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                  "argv": sys.argv}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        """Frees the lock (the file stays; it is reused by the next run)."""
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def __enter__(self) -> RunLock:
        return self if self.held else self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def lock_run_dir(folder: str | os.PathLike, command: str) -> RunLock:
    """Takes the exclusive lock of `folder` for `command`; see the module docstring.

    Raises:
        RunLockedError: another live process holds it; the message names its PID,
            command and start time.

    Example:
        >>> lock = lock_run_dir(tmp_path / "run", "search")  # doctest: +SKIP
        >>> lock.release()  # doctest: +SKIP
    """
    return RunLock(folder, command).acquire()


def _read_holder(fd: int) -> dict:
    try:
        text = os.pread(fd, 1 << 16, 0).decode(errors="replace")
        holder = json.loads(text) if text.strip() else {}
    except (OSError, ValueError):
        holder = {}
    return holder if isinstance(holder, dict) else {}


def _describe(holder: dict) -> str:
    if not holder:
        return "PID unknown: it is starting up"
    return (f"PID {holder.get('pid', '?')}, `qanas {holder.get('command', '?')}` started "
            f"{holder.get('started', 'at an unknown time')}")
