"""Small shared utilities: atomic IO, run metadata, run-folder locks, progress reporting."""

from qanas.utils.io import (
    OutputExistsError,
    OutputNotADirectoryError,
    atomic_write,
    atomic_write_bytes,
    atomic_write_json,
    check_output_dir,
    prepare_output_dir,
    versions,
    write_run_metadata,
)
from qanas.utils.progress import progress
from qanas.utils.runlock import RunLock, RunLockedError, lock_run_dir

__all__ = [
    "OutputExistsError",
    "OutputNotADirectoryError",
    "RunLock",
    "RunLockedError",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_json",
    "check_output_dir",
    "lock_run_dir",
    "prepare_output_dir",
    "progress",
    "versions",
    "write_run_metadata",
]
