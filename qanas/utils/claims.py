"""Work claims: several processes on one machine share a list of jobs through marker files.

A job is a folder. A process that wants to run it creates ``folder/CLAIM`` with
``O_CREAT | O_EXCL`` (atomic on a local file system), holding its host name and
process id; a second process sees the file and leaves the job alone while that
process is alive. A claim whose process has died on this host (killed run) is
stale: `try_claim` removes it and claims the job. Used by `qanas rankcorr`, so
that a second invocation on the same ``--out`` trains the standalone subnets the
first has not started yet.

Example:
    >>> if try_claim(folder):  # doctest: +SKIP
    ...     try:
    ...         run_job(folder)
    ...     finally:
    ...         release(folder)
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

CLAIM_NAME = "CLAIM"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def claim_owner(folder: str | os.PathLike) -> dict | None:
    """The {"host", "pid"} of the claim on `folder`, or None when unclaimed (or unreadable)."""
    try:
        owner = json.loads((Path(folder) / CLAIM_NAME).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    return owner if isinstance(owner, dict) else None


def is_claimed_by_live_process(folder: str | os.PathLike) -> bool:
    """True when `folder` is claimed by a process that is still running.

    A claim from another host cannot be checked and counts as live; a claim file
    that cannot be parsed (a writer caught between create and write) counts as live too.
    """
    path = Path(folder) / CLAIM_NAME
    if not path.exists():
        return False
    owner = claim_owner(folder)
    if owner is None or owner.get("host") != socket.gethostname():
        return True
    return _pid_alive(int(owner.get("pid", -1)))


def try_claim(folder: str | os.PathLike) -> bool:
    """Claims `folder` for this process; False when a live process holds it.

    A claim already held by this process succeeds again; a stale claim (its
    process is gone from this host) is taken over.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / CLAIM_NAME
    me = {"host": socket.gethostname(), "pid": os.getpid()}
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if claim_owner(folder) == me:
                return True
            if is_claimed_by_live_process(folder):
                return False
            path.unlink(missing_ok=True)  # stale: its process died
            continue
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        return True
    return False


def release(folder: str | os.PathLike) -> None:
    """Removes this process's claim on `folder` (someone else's is left alone)."""
    if claim_owner(folder) == {"host": socket.gethostname(), "pid": os.getpid()}:
        (Path(folder) / CLAIM_NAME).unlink(missing_ok=True)
