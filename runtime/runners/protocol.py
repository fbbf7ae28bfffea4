"""The harness's framed output (docs/serial-protocol.md), parsed line by line.

The same lines come over semihosting (QEMU) and over a UART (a board), so one parser
serves the `qemu` and `serial` runners. Lines that do not start with ``@`` (boot banners,
a vendor's SDK printing) are ignored.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from urllib.parse import unquote

import numpy as np

from runtime.runners.base import RunnerError, TensorSpec

PROTOCOL_VERSION = 1


class ProtocolError(RunnerError):
    """The harness reported an error, or its output was truncated or corrupt."""


def _fields(words: list[str]) -> dict[str, str]:
    return dict(w.split("=", 1) for w in words if "=" in w)


@dataclass
class HarnessReport:
    """Everything one harness session printed.

    Attributes:
        header: the key=value fields of ``@QANAS BEGIN`` (target, unit, tick_hz, ...).
        ticks: ticks of each timed run.
        layer_ticks: kernel index → ticks of the last run (when profiled).
        outputs: output index → raw bytes (CRC-checked).
        output_names: output index → name.
        memory: the key=value fields of ``@S`` (stack_peak, stack_size, arena).
        status: "QANAS_OK" once ``@QANAS END`` arrived.
    """

    header: dict = field(default_factory=dict)
    ticks: list[int] = field(default_factory=list)
    layer_ticks: dict[int, int] = field(default_factory=dict)
    outputs: dict[int, bytes] = field(default_factory=dict)
    output_names: dict[int, str] = field(default_factory=dict)
    memory: dict = field(default_factory=dict)
    status: str | None = None
    _expected: dict = field(default_factory=dict)
    _chunks: dict = field(default_factory=dict)

    @property
    def done(self) -> bool:
        """True once END arrived."""
        return self.status is not None

    def feed(self, line: str) -> bool:
        """Consumes one line; returns True when the session is complete.

        Raises:
            ProtocolError: an ``@QANAS ERROR`` line, a CRC mismatch, or a malformed frame.
        """
        line = line.strip()
        if not line.startswith("@"):
            return self.done
        words = line.split()
        try:
            tag = words[0]
            if tag == "@QANAS" and words[1] == "BEGIN":
                self.header = _fields(words[2:])
                if int(self.header.get("proto", -1)) != PROTOCOL_VERSION:
                    raise ProtocolError(f"harness speaks protocol {self.header.get('proto')}, "
                                        f"this runner {PROTOCOL_VERSION}: rebuild the firmware")
            elif tag == "@QANAS" and words[1] == "ERROR":
                info = _fields(words[2:])
                raise ProtocolError(f"the harness failed at {info.get('where', '?')}: "
                                    f"{info.get('status', line)}")
            elif tag == "@QANAS" and words[1] == "END":
                self._finish(_fields(words[2:]).get("status", "?"))
            elif tag == "@T":
                self.ticks.append(int(words[2]))
            elif tag == "@L":
                self.layer_ticks[int(words[1])] = int(words[2])
            elif tag == "@O":
                index = int(words[1])
                self._expected[index] = (int(words[2]), int(words[3], 16))
                # the harness percent-encodes the name (bytes outside '!'..'~', and '%')
                self.output_names[index] = (unquote(words[4], errors="replace")
                                            if len(words) > 4 else str(index))
                self._chunks[index] = {}
            elif tag == "@D":
                self._chunks[int(words[1])][int(words[2])] = bytes.fromhex(words[3])
            elif tag == "@S":
                self.memory = {k: int(v) for k, v in _fields(words[1:]).items()}
        except (IndexError, KeyError, ValueError) as exc:
            raise ProtocolError(f"malformed harness line {line[:120]!r}: {exc}") from None
        return self.done

    def _finish(self, status: str) -> None:
        for index, (nbytes, crc) in self._expected.items():
            chunks = self._chunks[index]
            data = b"".join(chunks[offset] for offset in sorted(chunks))
            if len(data) != nbytes:
                raise ProtocolError(f"output {index}: received {len(data)} of {nbytes} bytes")
            if zlib.crc32(data) != crc:
                raise ProtocolError(f"output {index}: CRC {zlib.crc32(data):08x} != {crc:08x} "
                                    "(corrupted transfer)")
            self.outputs[index] = data
        self.status = status
        if status != "QANAS_OK":
            raise ProtocolError(f"the harness ended with status {status}")

    def arrays(self, specs: list[TensorSpec]) -> dict[str, np.ndarray]:
        """Outputs as arrays of the model's dtypes and shapes (from compile.json)."""
        out = {}
        for i, s in enumerate(specs):
            raw = self.outputs.get(i)
            if raw is None or len(raw) != s.nbytes:
                raise ProtocolError(f"output {s.name!r} missing or of the wrong size")
            dtype = np.dtype(s.dtype).newbyteorder("<")
            out[s.name] = np.frombuffer(raw, dtype=dtype).astype(s.dtype).reshape(s.shape)
        return out


def parse_report(text: str) -> HarnessReport:
    """Parses a whole transcript; raises `ProtocolError` when it is incomplete."""
    report = HarnessReport()
    for line in text.splitlines():
        if report.feed(line):
            return report
    raise ProtocolError("the harness output ended before '@QANAS END' "
                        f"(last lines: {text.strip().splitlines()[-3:]!r})")
