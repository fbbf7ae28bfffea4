"""Small shared utilities: atomic IO, run metadata, progress reporting."""

from qanas.utils.io import (
    OutputExistsError,
    atomic_write,
    atomic_write_bytes,
    atomic_write_json,
    prepare_output_dir,
    versions,
    write_run_metadata,
)
from qanas.utils.progress import progress

__all__ = [
    "OutputExistsError",
    "atomic_write",
    "atomic_write_bytes",
    "atomic_write_json",
    "prepare_output_dir",
    "progress",
    "versions",
    "write_run_metadata",
]
