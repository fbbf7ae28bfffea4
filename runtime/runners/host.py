"""Runs an emitted project natively: `make` with the host compiler, then the host harness.

The harness (runtime/c/harness/host_main.c) reads raw input files, runs the model,
writes raw output files and prints one JSON object with the latencies.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from runtime.build_cache import cached_cc
from runtime.runners.base import Runner, RunnerError, RunResult, check_inputs, read_io
from runtime.runners.raw_io import parse_report, read_outputs, write_inputs
from targets import get_target


def _project_target(project_dir: Path) -> str:
    """The target a project was compiled for (from its compile.json; "host" if unknown)."""
    try:
        return json.loads((Path(project_dir) / "compile.json").read_text()).get("target", "host")
    except (OSError, json.JSONDecodeError):
        return "host"


class HostRunner(Runner):
    """Builds the project natively (host gcc) and runs its host harness.

    Args:
        jobs: parallel make jobs.
        cflags: overrides the Makefile's CFLAGS (e.g. "-O3 -march=native"); None keeps them.
    """

    name = "host"

    def __init__(self, jobs: int = 2, cflags: str | None = None):
        self.jobs = jobs
        self.cflags = cflags

    def build(self, project_dir: Path) -> Path:
        """Builds the host harness with the host compiler; returns the executable.

        A project compiled for the host builds with its own Makefile flags into
        ``build/``. A project compiled for another target (its Makefile names that
        target's cross compiler) is built with the host toolchain into ``build-host/``,
        leaving the target's build alone: that host build is the reference the
        firmware outputs are compared with bit for bit.
        """
        project_dir = Path(project_dir)
        cmd = ["make", "-s", "-C", str(project_dir), f"-j{self.jobs}", "all"]
        build_dir = "build"
        tc = get_target("host").toolchain
        if _project_target(project_dir) != "host":
            build_dir = "build-host"
            cmd += [f"CC={cached_cc(tc.cc)}", "AR=ar", f"CFLAGS={' '.join(tc.cflags)}",
                    f"BUILD={build_dir}"]
        elif "CC" not in os.environ:  # the Makefile's compiler, unless the user chose one
            cmd.append(f"CC={cached_cc(tc.cc)}")
        if self.cflags is not None:
            cmd.append(f"CFLAGS={self.cflags}")
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RunnerError(f"host build of {project_dir} failed:\n{proc.stdout}{proc.stderr}")
        return project_dir / build_dir / "host_main"

    def run(self, project_dir: Path, inputs: Mapping[str, np.ndarray],
            repeats: int = 1) -> RunResult:
        """Builds, writes the inputs as raw files, runs the harness and reads the outputs."""
        project_dir = Path(project_dir)
        in_specs, out_specs = read_io(project_dir)
        arrays = check_inputs(in_specs, inputs)
        exe = self.build(project_dir)
        with tempfile.TemporaryDirectory(prefix="qanas-run-") as tmp:
            tmp = Path(tmp)
            files = write_inputs(tmp, arrays)
            proc = subprocess.run([str(exe), str(repeats), str(tmp), *files],
                                  capture_output=True, text=True,
                                  env={**os.environ, "OMP_NUM_THREADS": "1"})
            report = parse_report(proc, str(exe))
            outputs = read_outputs(tmp, out_specs)
        return RunResult(outputs, [float(t) for t in report["latency_s"]],
                         {"runner": self.name, "executable": str(exe), **report})
