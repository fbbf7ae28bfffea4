"""Run Vela on an int8 TFLite model for an Ethos-U target and read its estimates.

Vela runs in a subprocess (``python -m ethosu.vela``): its default compiler core
(``regor``) is native code that prints its warnings, the only place it names why an
operator stays on the CPU, straight to the process's stdout, where an in-process
``redirect_stdout`` would not see them. The subprocess costs about half a second.

Example:
    >>> from targets import get_target
    >>> result = run_vela("model.tflite", get_target("ethos-u55-128"), "out/vela")  # doctest: +SKIP
    >>> result.report.total_cycles, result.report.cpu_fallback  # doctest: +SKIP
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from compiler.errors import CompilerError
from compiler.npu.report import VelaReport, build_report, read_per_layer_csv, read_summary_csv
from targets import NpuConfig, Target

OPTIMISE = ("Performance", "Size")
"""Vela's optimisation strategies (``--optimise``)."""


class VelaError(CompilerError, RuntimeError):
    """Vela refused the model or failed; the message carries the end of its log."""


@dataclass(frozen=True)
class VelaResult:
    """What one Vela run left in its output folder, and the report read from it."""

    out_dir: Path
    optimized_tflite: Path
    summary_csv: Path
    per_layer_csv: Path
    log: Path
    report: VelaReport


@cache
def vela_version() -> str:
    """The installed ``ethos-u-vela`` version."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("ethos-u-vela")
    except PackageNotFoundError:
        raise VelaError("ethos-u-vela is not installed; `pip install ethos-u-vela` "
                        "(it is a dependency of qanas)") from None


def npu_config_of(target: Target | NpuConfig) -> NpuConfig:
    """The Vela configuration of an NPU target; a CPU target is refused with the NPU names."""
    if isinstance(target, NpuConfig):
        return target
    if target.npu_config is None:
        from targets import TARGETS

        npus = [n for n in TARGETS.names() if TARGETS.get(n).npu_config is not None]
        raise CompilerError(f"target {target.name!r} has no Ethos-U NPU configuration; Vela "
                            f"compiles for {', '.join(npus)}")
    return target.npu_config


def vela_command(tflite: str | Path, config: NpuConfig, out_dir: str | Path,
                 optimise: str = "Performance") -> list[str]:
    """The Vela command line: estimates per layer, CPU operators listed, our config."""
    if optimise not in OPTIMISE:
        raise CompilerError(f"optimise={optimise!r}: Vela's strategies are {', '.join(OPTIMISE)}")
    return [sys.executable, "-m", "ethosu.vela", str(tflite),
            "--accelerator-config", config.accelerator, "--config", config.config_file,
            "--system-config", config.system_config, "--memory-mode", config.memory_mode,
            "--optimise", optimise, "--output-dir", str(out_dir),
            "--show-cpu-operations", "--verbose-performance"]


def run_vela(tflite: str | Path, target: Target | NpuConfig, out_dir: str | Path,
             optimise: str = "Performance", timeout_s: float = 600) -> VelaResult:
    """Compiles `tflite` with Vela for `target` into `out_dir` and reads its estimates.

    The files appear in `out_dir` all at once (Vela writes into a temporary sibling folder
    that is renamed), so an interrupted run leaves no half-written estimates.

    Args:
        tflite: a fully int8 TFLite flatbuffer (`compiler.tflite.export_tflite`).
        target: an NPU target (or its `NpuConfig`).
        out_dir: output folder (replaced if it exists).
        optimise: ``"Performance"`` (Vela's default) or ``"Size"``.
        timeout_s: Vela is stopped after this many seconds.

    Returns:
        The `VelaResult` with the optimised model, Vela's CSVs, its log and the report.

    Raises:
        FileNotFoundError: `tflite` does not exist.
        VelaError: Vela failed (the tail of its log is in the message).
    """
    tflite, out_dir = Path(tflite).resolve(), Path(out_dir).resolve()
    if not tflite.is_file():
        raise FileNotFoundError(f"TFLite model {tflite} not found; export one with "
                                "compiler.tflite.export_tflite")
    config = npu_config_of(target)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        cmd = vela_command(tflite, config, work, optimise)
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s,
                                  cwd=work, env={**os.environ, "PYTHONHASHSEED": "0"})
        except subprocess.TimeoutExpired:
            raise VelaError(f"Vela did not finish {tflite} within {timeout_s:.0f} s") from None
        log = proc.stdout + proc.stderr
        (work / "vela.log").write_text(f"$ {' '.join(cmd)}\n{log}")
        if proc.returncode != 0:
            tail = "\n".join(log.strip().splitlines()[-15:])
            raise VelaError(f"Vela failed on {tflite} (exit {proc.returncode}) for "
                            f"{config.accelerator}/{config.system_config}/{config.memory_mode}:"
                            f"\n{tail}")
        _replace_dir(work, out_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return read_vela_output(out_dir, tflite.stem, config, optimise)


def read_vela_output(out_dir: str | Path, network: str, config: NpuConfig,
                     optimise: str) -> VelaResult:
    """The `VelaResult` of a finished run in `out_dir` for the network file stem `network`."""
    out_dir = Path(out_dir)
    optimized = out_dir / f"{network}_vela.tflite"
    summary = out_dir / f"{network}_summary_{config.system_config}.csv"
    per_layer = out_dir / f"{network}_per-layer.csv"
    log = out_dir / "vela.log"
    if not optimized.is_file():
        raise VelaError(f"Vela wrote no optimised model {optimized}; see {log}")
    report = build_report(read_summary_csv(summary), log.read_text(),
                          read_per_layer_csv(per_layer), optimized.stat().st_size, optimise,
                          vela_version())
    return VelaResult(out_dir, optimized, summary, per_layer, log, report)


def _replace_dir(src: Path, dst: Path) -> None:
    """Moves folder `src` to `dst`, replacing what was there."""
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dst, old)
        os.replace(src, dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(src, dst)
