"""Runs Cortex-M firmware in QEMU system emulation with deterministic instruction counts.

``qemu-system-arm -M <machine> -nographic -semihosting -icount shift=0``: with
``shift=0`` the virtual clock advances exactly 1 ns per guest instruction, so the
SysTick (clocked at the machine's SYSCLK) counts instructions / (1e9 / SYSCLK), the same
on every run and every host. QEMU 7.2 does not model DWT CYCCNT (reads as zero) nor
pipeline timing: the unit is *instructions*, not cycles, at a resolution of one SysTick
tick (40 instructions on MPS2 at 25 MHz, 31.25 on MPS3 at 32 MHz).
`latency_s` divides instructions by the board's clock, i.e. assumes one instruction per
cycle; compare targets by `protocol["latency"]`.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from runtime.runners.base import RunnerError, RunResult
from runtime.runners.firmware_base import FirmwareRunner
from runtime.runners.protocol import ProtocolError, parse_report
from targets import Target

QEMU_SYSTEM_ARM = "qemu-system-arm"


def qemu_version(binary: str = QEMU_SYSTEM_ARM) -> str:
    """First line of `binary --version`, or "unknown"."""
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
        return out.stdout.splitlines()[0]
    except (OSError, subprocess.CalledProcessError, IndexError):
        return "unknown"


def qemu_command(target: Target, elf: Path, *, serial: str = "null",
                 append: str | None = None) -> list[str]:
    """The QEMU command line that runs `elf` on `target`'s machine.

    Args:
        serial: the UART0 backend ("null", "pty", "tcp:127.0.0.1:PORT,server=on,wait=on").
        append: the semihosting command line (the harness reads "repeats=N warmup=W").
    """
    if target.emulator is None or target.runner not in ("qemu", "serial"):
        raise ValueError(f"target {target.name!r} has no QEMU machine; QEMU runs cortex-m4, "
                         "cortex-m7 and cortex-m55")
    cmd = [QEMU_SYSTEM_ARM, "-M", target.emulator, "-nographic", "-monitor", "none",
           "-semihosting-config", "enable=on,target=native", "-icount", "shift=0",
           "-serial", serial, "-kernel", str(elf)]
    if append:
        cmd += ["-append", append]
    return cmd


class QemuRunner(FirmwareRunner):
    """Builds the firmware for a QEMU-modelled core and runs it there.

    Args:
        target: "cortex-m4", "cortex-m7" or "cortex-m55" (or a Target with an emulator).
        timeout_s: wall-clock bound of one emulator run.
        warmup, profile_layers, jobs: see `FirmwareRunner`.
    """

    name = "qemu"
    unit = "instructions"

    def __init__(self, target: str | Target = "cortex-m4", timeout_s: float = 300.0,
                 warmup: int = 0, profile_layers: bool = False, jobs: int = 2):
        super().__init__(target, warmup, profile_layers, jobs)
        self.timeout_s = timeout_s
        qemu_command(self.target, Path("firmware.elf"))  # validates the target now

    def ticks_to_unit(self, ticks: int, tick_hz: int) -> float:
        """SysTick ticks → instructions (1 ns per instruction with -icount shift=0)."""
        return ticks * 1e9 / tick_hz

    def run(self, project_dir: Path, inputs: Mapping[str, np.ndarray],
            repeats: int = 1) -> RunResult:
        """Builds with `inputs` embedded, runs `repeats` timed runs in QEMU, parses."""
        if shutil.which(QEMU_SYSTEM_ARM) is None:
            raise RunnerError(f"{QEMU_SYSTEM_ARM} not found; install it with "
                              "`make toolchains` (Debian package qemu-system-arm)")
        image, out_specs = self._prepare_run(project_dir, inputs, repeats)
        cmd = qemu_command(self.target, image.elf,
                           append=f"repeats={int(repeats)} warmup={self.warmup}")
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=self.timeout_s)
        except subprocess.TimeoutExpired as exc:
            raise RunnerError(f"QEMU did not finish within {self.timeout_s:.0f} s: "
                              f"{' '.join(cmd)}") from exc
        try:
            report = parse_report(proc.stdout)
        except ProtocolError as exc:
            raise RunnerError(f"{exc}\ncommand: {' '.join(cmd)}\nexit {proc.returncode}\n"
                              f"{proc.stderr[-2000:]}") from exc
        if proc.returncode != 0:
            raise RunnerError(f"QEMU exited {proc.returncode}: {proc.stderr[-2000:]}")
        extra = {"emulator": {"command": cmd, "version": qemu_version(),
                              "machine": self.target.emulator, "icount_shift": 0}}
        return self._result(Path(project_dir), report, image, out_specs, extra)


def free_tcp_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def qemu_uart_board(target: Target, elf: Path, port: int | None = None) -> Iterator[str]:
    """Runs `elf` in QEMU with UART0 on a TCP socket: a board without a board.

    Yields the pyserial URL (``socket://127.0.0.1:PORT``) that the `serial` runner opens;
    QEMU waits for that connection before starting the guest. The emulator is stopped on
    exit from the block.
    """
    port = port or free_tcp_port()
    cmd = qemu_command(target, elf, serial=f"tcp:127.0.0.1:{port},server=on,wait=on")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        yield f"socket://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
