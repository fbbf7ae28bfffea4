"""Runs firmware on a real board over a serial port (pyserial), by the line protocol of
docs/serial-protocol.md.

Flow: build the firmware with the UART console and the inputs embedded, flash it with
the user's command (pyOCD, OpenOCD, west, nrfjprog: anything, given as a template with
``{elf}``, ``{hex}`` or ``{bin}``), open the port, send ``PING`` until the board answers
``@QANAS HELLO``, send ``RUN repeats=N warmup=W`` and read frames until
``@QANAS END`` or ``@QANAS ERROR``. Every step has its own timeout. The port is any
pyserial URL: ``/dev/ttyACM0``, ``socket://host:port`` (QEMU's UART, used by the tests),
``rfc2217://...``.
"""

from __future__ import annotations

import shlex
import subprocess
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from runtime.runners.base import RunnerError, RunResult
from runtime.runners.firmware_base import FirmwareRunner
from runtime.runners.protocol import HarnessReport, ProtocolError
from targets import Target

Flasher = Callable[[Path], None]


class SerialRunner(FirmwareRunner):
    """A board on a serial port.

    Args:
        port: pyserial URL or device ("/dev/ttyACM0", "socket://127.0.0.1:4444").
        target: a board (or core) target with a port.
        flash: command template (``"pyocd flash -t stm32f746ngHx {elf}"``), a callable
            taking the ELF path, or None when the board is already flashed.
        baud: UART speed (the ports use 115200).
        handshake_timeout_s: how long to PING before giving up.
        run_timeout_s: how long the whole session may take after RUN.
        warmup, profile_layers, jobs: see `FirmwareRunner`.
    """

    name = "serial"
    unit = "cycles"
    io = "uart"

    def __init__(self, port: str, target: str | Target = "stm32f746-disco",
                 flash: str | Flasher | None = None, baud: int = 115200,
                 handshake_timeout_s: float = 20.0, run_timeout_s: float = 300.0,
                 warmup: int = 1, profile_layers: bool = False, jobs: int = 2):
        super().__init__(target, warmup, profile_layers, jobs)
        self.port = port
        self.flash = flash
        self.baud = baud
        self.handshake_timeout_s = handshake_timeout_s
        self.run_timeout_s = run_timeout_s

    def ticks_to_unit(self, ticks: int, tick_hz: int) -> float:
        """Board ticks are cycles (DWT); QEMU's UART machine reports SysTick ticks, which
        are converted to instructions as by the qemu runner."""
        if self._tick_unit == "systick":
            return ticks * 1e9 / tick_hz
        return float(ticks)

    _tick_unit = "cycles"

    def flash_image(self, elf: Path) -> None:
        """Flashes `elf` with the configured command (nothing when none is configured)."""
        if self.flash is None:
            return
        if callable(self.flash):
            self.flash(elf)
            return
        words = [w.format(elf=elf, hex=elf.with_suffix(".hex"), bin=elf.with_suffix(".bin"))
                 for w in shlex.split(self.flash)]
        try:
            proc = subprocess.run(words, capture_output=True, text=True)
        except FileNotFoundError:
            raise RunnerError(f"the flash tool {words[0]!r} is not installed; install it, give "
                              "another command (`--flash 'openocd ... {elf}'`), or flash the "
                              "board yourself and pass --no-flash") from None
        if proc.returncode != 0:
            raise RunnerError(f"flashing with {' '.join(words)} failed ({proc.returncode}):\n"
                              f"{proc.stdout}{proc.stderr}")

    def _open(self, deadline: float):
        import serial

        last = None
        while time.monotonic() < deadline:
            try:
                return serial.serial_for_url(self.port, baudrate=self.baud, timeout=0.2)
            except (serial.SerialException, OSError) as exc:  # QEMU not listening yet
                last = exc
                time.sleep(0.1)
        raise RunnerError(f"cannot open serial port {self.port}: {last}")

    @staticmethod
    def _read_line(conn, buffer: bytearray, deadline: float, what: str) -> str | None:
        while time.monotonic() < deadline:
            newline = buffer.find(b"\n")
            if newline >= 0:
                line = bytes(buffer[:newline]).decode("ascii", "replace")
                del buffer[:newline + 1]
                return line
            chunk = conn.read(conn.in_waiting or 1)
            if chunk:
                buffer.extend(chunk)
            else:
                return None  # read timeout: let the caller resend or give up
        raise RunnerError(f"serial timeout waiting for {what} on {conn.port}")

    def session(self, conn, repeats: int) -> tuple[dict, HarnessReport]:
        """Handshake and one RUN over an open connection; returns (hello, report)."""
        buffer = bytearray()
        deadline = time.monotonic() + self.handshake_timeout_s
        hello = None
        conn.write(b"PING\n")
        while hello is None:
            line = self._read_line(conn, buffer, deadline, "@QANAS HELLO")
            if line is None:
                conn.write(b"PING\n")
            elif line.startswith("@QANAS HELLO"):
                hello = dict(w.split("=", 1) for w in line.split()[2:] if "=" in w)
        if hello.get("target") != self.target.name:
            raise RunnerError(f"the board runs firmware for {hello.get('target')!r}, "
                              f"expected {self.target.name!r}: flash the right image")
        buffer.clear()
        conn.reset_input_buffer()  # drop HELLOs answering extra PINGs
        conn.write(f"RUN repeats={int(repeats)} warmup={self.warmup}\n".encode())
        report = HarnessReport()
        deadline = time.monotonic() + self.run_timeout_s
        while not report.done:
            line = self._read_line(conn, buffer, deadline, "@QANAS END")
            if line is not None and not line.startswith("@QANAS HELLO"):
                report.feed(line)
        return hello, report

    def run(self, project_dir: Path, inputs: Mapping[str, np.ndarray],
            repeats: int = 1) -> RunResult:
        """Builds with `inputs`, flashes, runs `repeats` timed runs over the serial line."""
        image, out_specs = self._prepare_run(project_dir, inputs, repeats)
        self.flash_image(image.elf)
        conn = self._open(time.monotonic() + self.handshake_timeout_s)
        try:
            hello, report = self.session(conn, repeats)
        except ProtocolError as exc:
            raise RunnerError(f"board on {self.port}: {exc}") from exc
        finally:
            conn.close()
        self._tick_unit = report.header.get("unit", "cycles")
        if self._tick_unit == "systick":
            self.unit = "instructions"
        extra = {"port": self.port, "baud": self.baud, "hello": hello}
        return self._result(Path(project_dir), report, image, out_specs, extra)
