"""What the firmware runners (`qemu`, `serial`) share: build for a target, read the report.

Every result records its protocol: target, clock, unit (instructions under QEMU,
cycles on a board), runs, warm-up, toolchain and flags, compiler version.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from runtime.firmware import (
    FirmwareImage,
    build_firmware,
    check_fits,
    prepare_firmware,
)
from runtime.runners.base import (
    Runner,
    RunResult,
    TensorSpec,
    check_inputs,
    read_io,
)
from runtime.runners.host import HostRunner
from runtime.runners.protocol import HarnessReport
from targets import Target, get_target


def compiler_versions() -> dict[str, str]:
    """Versions of the code generator and of qanas (from package metadata: no imports)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for package in ("apache-tvm", "qanas"):
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "unknown"
    return out


def zero_inputs(specs: Sequence[TensorSpec]) -> list[np.ndarray]:
    """All-zero inputs of the model's shapes and dtypes (for a build without data)."""
    return [np.zeros(s.shape, dtype=s.dtype) for s in specs]


class FirmwareRunner(Runner):
    """Base of runners that build a firmware for a Cortex-M target and parse its report.

    Args:
        target: target name or `Target` (must have a port).
        warmup: untimed runs before the timed ones.
        profile_layers: time every kernel (adds two timer reads per kernel).
        jobs: parallel make jobs.
    """

    io = "semihosting"
    unit = "ticks"

    def __init__(self, target: str | Target = "cortex-m4", warmup: int = 0,
                 profile_layers: bool = False, jobs: int = 2):
        self.target = get_target(target) if isinstance(target, str) else target
        self.warmup = int(warmup)
        self.profile_layers = bool(profile_layers)
        self.jobs = jobs
        self.image: FirmwareImage | None = None

    def build_with_inputs(self, project_dir: Path, inputs: Sequence[np.ndarray],
                          repeats: int = 1) -> FirmwareImage:
        """Checks the plan fits, writes the firmware project with `inputs`, builds it."""
        check_fits(project_dir, self.target)
        fw = prepare_firmware(project_dir, self.target, inputs, io=self.io,
                              profile_layers=self.profile_layers, repeats=repeats,
                              warmup=self.warmup)
        self.image = build_firmware(fw, self.target, jobs=self.jobs)
        return self.image

    def build(self, project_dir: Path) -> Path:
        """Builds the firmware with all-zero inputs; returns the ELF."""
        in_specs, _ = read_io(Path(project_dir))
        return self.build_with_inputs(project_dir, zero_inputs(in_specs)).elf

    def _prepare_run(self, project_dir: Path, inputs: Mapping[str, np.ndarray],
                     repeats: int) -> tuple[FirmwareImage, list[TensorSpec]]:
        in_specs, out_specs = read_io(Path(project_dir))
        arrays = check_inputs(in_specs, inputs)
        return self.build_with_inputs(project_dir, arrays, repeats), out_specs

    def ticks_to_unit(self, ticks: int, tick_hz: int) -> float:
        """Converts harness ticks to this runner's unit."""
        raise NotImplementedError

    def _result(self, project_dir: Path, report: HarnessReport, image: FirmwareImage,
                out_specs: list[TensorSpec], extra: dict) -> RunResult:
        tick_hz = int(report.header.get("tick_hz", self.target.clock_hz))
        values = [self.ticks_to_unit(t, tick_hz) for t in report.ticks]
        clock = self.target.clock_hz or tick_hz
        meta = json.loads((Path(project_dir) / "compile.json").read_text())
        kernels = meta.get("kernel_names", [])
        # what each step runs: a kernel library function, else the TVM kernel
        runs = meta.get("kernel_implementations", kernels)
        layers = [{"index": k, "kernel": kernels[k] if k < len(kernels) else str(k),
                   "implementation": runs[k] if k < len(runs) else str(k),
                   "value": self.ticks_to_unit(t, tick_hz)}
                  for k, t in sorted(report.layer_ticks.items())]
        protocol = {
            "runner": self.name, "target": self.target.name, "clock_hz": clock,
            "unit": self.unit, "latency": values, "runs": len(values), "warmup": self.warmup,
            "tick_unit": report.header.get("unit"), "tick_hz": tick_hz, "ticks": report.ticks,
            "toolchain": image.toolchain, "compiler_version": compiler_versions(),
            "elf": str(image.elf), "flash_bytes": image.flash_bytes,
            "sram_bytes": {"arena": image.arena_bytes,
                           "stack_peak": report.memory.get("stack_peak"),
                           "static": image.static_sram_bytes,
                           "stack_reserved": image.stack_bytes},
            "layers": layers,
            # the names the firmware printed (percent-decoded): the model's own output names
            "output_names": [report.output_names.get(i) for i in range(len(out_specs))],
            **extra,
        }
        latency_s = [v / clock for v in values]
        return RunResult(report.arrays(out_specs), latency_s, protocol)


# The host build of a project compiled for any target is what `HostRunner` builds; the
# name is kept for callers that say what the run is for: the firmware's reference.
HostReferenceRunner = HostRunner
