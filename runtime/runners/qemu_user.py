"""Runs the host harness cross-built for AArch64 Linux under `qemu-aarch64` (user mode).

The same emitted C as the host build, compiled by ``aarch64-linux-gnu-gcc -static``
into ``build-aarch64-linux/`` (the host build in ``build/`` is untouched), then started
as ``qemu-aarch64 host_main REPEATS OUT_DIR INPUT.bin ...``. On a real Cortex-A board
copy that static binary over and run it the same way. Latencies are wall-clock seconds
of the emulated process: they show that it runs, not how fast a board would be.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from runtime.build_cache import cached_cc
from runtime.runners.base import Runner, RunnerError, RunResult, check_inputs, read_io
from runtime.runners.firmware_base import compiler_versions
from runtime.runners.qemu import qemu_version
from runtime.runners.raw_io import parse_report, read_outputs, write_inputs
from targets import Target, get_target


class QemuUserRunner(Runner):
    """Cross-builds the host harness and runs it under QEMU user-mode emulation.

    Args:
        target: a target whose runner is "qemu-user" (default "aarch64-linux").
        timeout_s: wall-clock bound of one run.
        jobs: parallel make jobs.
    """

    name = "qemu-user"

    def __init__(self, target: str | Target = "aarch64-linux", timeout_s: float = 300.0,
                 jobs: int = 2):
        self.target = get_target(target) if isinstance(target, str) else target
        if self.target.runner != "qemu-user" or not self.target.emulator:
            raise ValueError(f"target {self.target.name!r} does not run under QEMU user mode; "
                             "use target 'aarch64-linux'")
        self.timeout_s = timeout_s
        self.jobs = jobs

    @property
    def build_dir(self) -> str:
        """Build folder inside the project, per target."""
        return f"build-{self.target.name}"

    def build(self, project_dir: Path) -> Path:
        """`make` with the cross compiler into build-<target>/; returns host_main."""
        tc = self.target.toolchain
        if shutil.which(tc.cc) is None:
            raise RunnerError(f"{tc.cc} not found; install it with `make toolchains`")
        project_dir = Path(project_dir)
        flags = " ".join((*tc.cflags, *tc.ldflags))
        cmd = ["make", "-s", "-C", str(project_dir), f"-j{self.jobs}", "all", f"CC={cached_cc(tc.cc)}",
               f"AR={tc.cc.replace('gcc', 'ar')}", f"CFLAGS={flags}", f"BUILD={self.build_dir}"]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise RunnerError(f"cross-building {project_dir} for {self.target.name} failed:\n"
                              f"{proc.stdout}{proc.stderr}")
        return project_dir / self.build_dir / "host_main"

    def run(self, project_dir: Path, inputs: Mapping[str, np.ndarray],
            repeats: int = 1) -> RunResult:
        """Builds, runs the static binary under the emulator, reads the raw outputs."""
        project_dir = Path(project_dir)
        in_specs, out_specs = read_io(project_dir)
        arrays = check_inputs(in_specs, inputs)
        exe = self.build(project_dir)
        emulator = self.target.emulator
        if shutil.which(emulator) is None:
            raise RunnerError(f"{emulator} not found; install it with `make toolchains` "
                              "(Debian package qemu-user)")
        with tempfile.TemporaryDirectory(prefix="qanas-qemu-user-") as tmp:
            tmp = Path(tmp)
            files = write_inputs(tmp, arrays)
            cmd = [emulator, str(exe), str(repeats), str(tmp), *files]
            try:
                proc = subprocess.run(cmd, capture_output=True, text=True,
                                      timeout=self.timeout_s)
            except subprocess.TimeoutExpired as exc:
                raise RunnerError(f"{emulator} did not finish in {self.timeout_s:.0f} s") from exc
            report = parse_report(proc, " ".join(cmd))
            outputs = read_outputs(tmp, out_specs)
        latency = [float(t) for t in report["latency_s"]]
        protocol = {"runner": self.name, "target": self.target.name, "clock_hz": None,
                    "unit": "seconds (emulated)", "latency": latency, "runs": len(latency),
                    "warmup": 0, "executable": str(exe),
                    "toolchain": {"cc": self.target.toolchain.cc,
                                  "cflags": list(self.target.toolchain.cflags),
                                  "ldflags": list(self.target.toolchain.ldflags)},
                    "compiler_version": compiler_versions(),
                    "emulator": {"command": cmd[:2], "version": qemu_version(emulator)},
                    "arena_bytes": report.get("arena_bytes")}
        return RunResult(outputs, latency, protocol)
