"""The host harness's file protocol, shared by the native and qemu-user runners.

`host_main` (runtime/c/harness/host_main.c) takes `repeats out_dir input_0.bin ...`,
reads each input as raw little-endian bytes, writes `output_<i>.bin` into `out_dir`
and prints one JSON report (status, latencies) as its last stdout line.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from runtime.runners.base import RunnerError, TensorSpec


def write_inputs(folder: Path, arrays: Sequence[np.ndarray]) -> list[str]:
    """Writes each array as `input_<i>.bin` (little-endian); returns the paths."""
    paths = []
    for i, a in enumerate(arrays):
        path = Path(folder) / f"input_{i}.bin"
        path.write_bytes(a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes())
        paths.append(str(path))
    return paths


def parse_report(proc: subprocess.CompletedProcess, what: str) -> dict:
    """The harness's JSON report; raises `RunnerError` naming `what` unless status is OK."""
    try:
        report = json.loads(proc.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        report = {"status": "no report", "error": proc.stdout + proc.stderr}
    if proc.returncode != 0 or report.get("status") != "QANAS_OK":
        raise RunnerError(f"{what} failed ({proc.returncode}): {report}\n{proc.stderr}")
    return report


def read_outputs(folder: Path, specs: Sequence[TensorSpec]) -> dict[str, np.ndarray]:
    """Reads `output_<i>.bin` for each spec, checking the byte count."""
    outputs = {}
    for i, s in enumerate(specs):
        raw = (Path(folder) / f"output_{i}.bin").read_bytes()
        if len(raw) != s.nbytes:
            raise RunnerError(f"output {s.name!r}: {len(raw)} bytes, expected {s.nbytes}")
        outputs[s.name] = np.frombuffer(raw, dtype=np.dtype(s.dtype).newbyteorder("<")
                                        ).astype(s.dtype).reshape(s.shape)
    return outputs
