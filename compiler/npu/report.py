"""Vela's output files and log, read into our result schema (`VelaReport`).

Vela (``ethos-u-vela``) writes, for a network ``NAME`` compiled with a system config:

* ``NAME_summary_<system config>.csv``: one row of whole-network estimates. Memory
  columns (``*_memory_used``) are KiB; ``cycles_*`` are NPU clock cycles;
  ``inference_time`` is ``cycles_total / core_clock`` in seconds.
* ``NAME_per-layer.csv`` (with ``--verbose-performance``): one row per operator with
  its target (``NPU`` or ``CPU``) and estimated cycles.
* on stdout: with ``--show-cpu-operations``, a ``CPU operators = N (P%)`` count and one
  ``CPU: <type> = <ofm tensor> (outputs [...])`` line per operator left on the CPU,
  and for each operator Vela refuses a ``Warning (...) operator: <OP>, ofm: '<tensor>'``
  block whose ``Reason:`` lines say why.

The parsers here read exactly those, with the csv module; the tests feed them real Vela
output (never hand-written files).
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from compiler.errors import CompilerError

KIB = 1024

_CPU_COUNT = re.compile(r"^\s*(CPU|NPU) operators = (\d+) \(([\d.]+)%\)", re.M)
_CPU_LINE = re.compile(r"^\s*CPU: (\S+) = (.*?) \(outputs \[[^\]]*\]\)\s*$", re.M)
_WARNING = re.compile(
    r"^Warning \((?P<kind>[^)]*)\) operator: (?P<op>\S+), ofm: '(?P<ofm>.*)'\s*\n"
    r"(?P<body>(?:(?!Warning \().+\n?)*)", re.M)


class VelaOutputError(CompilerError, ValueError):
    """Vela's output is missing or not in the form this version of qanas reads."""


@dataclass(frozen=True)
class CpuOp:
    """An operator Vela leaves on the CPU: its type, its output tensor and Vela's reason."""

    op: str
    tensor: str
    reason: str

    def to_dict(self) -> dict:
        """JSON-friendly form."""
        return asdict(self)


@dataclass(frozen=True)
class LayerEstimate:
    """One row of Vela's per-layer CSV: operator, where it runs and its estimated cycles."""

    op: str
    target: str
    cycles: int
    macs: int
    name: str


@dataclass(frozen=True)
class VelaReport:
    """Vela's estimates for one compiled network (all figures are Vela's, not measured).

    Attributes:
        network: the network name (file stem).
        accelerator, system_config, memory_mode, optimise: how Vela compiled it.
        clock_hz: the system config's NPU clock.
        vela_version: the ``ethos-u-vela`` version that produced the figures.
        npu_cycles: cycles of the NPU command stream (``cycles_npu``).
        total_cycles: NPU cycles plus memory-access stalls Vela models (``cycles_total``).
        latency_s: ``total_cycles / clock_hz`` (Vela's ``inference_time``).
        sram_bytes, dram_bytes, on_chip_flash_bytes, off_chip_flash_bytes: peak memory
            Vela allocates in each area (its ``*_memory_used`` KiB x 1024).
        arena_cache_bytes: the memory mode's arena cache size.
        weights_bytes: NPU-encoded weights; original_weights_bytes: before encoding.
        macs: MACs of the network per inference.
        model_bytes: size of the optimised ``*_vela.tflite`` (what the device stores).
        npu_ops, cpu_ops: operator counts Vela reports.
        cpu_fallback: every operator left on the CPU, with Vela's reason.
        layers: the per-layer estimates (empty without ``--verbose-performance``).
    """

    network: str
    accelerator: str
    system_config: str
    memory_mode: str
    optimise: str
    clock_hz: float
    vela_version: str
    npu_cycles: int
    total_cycles: int
    latency_s: float
    sram_bytes: int
    dram_bytes: int
    on_chip_flash_bytes: int
    off_chip_flash_bytes: int
    arena_cache_bytes: int
    weights_bytes: int
    original_weights_bytes: int
    macs: int
    model_bytes: int
    npu_ops: int
    cpu_ops: int
    cpu_fallback: tuple[CpuOp, ...] = ()
    layers: tuple[LayerEstimate, ...] = field(default=(), repr=False)

    @property
    def cpu_op_share(self) -> float:
        """Share of operators left on the CPU (0 when the whole network runs on the NPU)."""
        total = self.npu_ops + self.cpu_ops
        return self.cpu_ops / total if total else 0.0

    @property
    def fully_on_npu(self) -> bool:
        """True when Vela left no operator on the CPU."""
        return self.cpu_ops == 0 and not self.cpu_fallback

    @property
    def feature_map_bytes(self) -> int:
        """Bytes of the tensor arena's memory: SRAM when the arena is there, else DRAM.

        In ``Dedicated_Sram`` modes the arena lives in DRAM and the SRAM is the NPU's
        cache; in ``Shared_Sram`` and ``Sram_Only`` the arena is the SRAM figure.
        """
        if self.memory_mode.startswith("Dedicated_Sram"):
            return self.dram_bytes
        return self.sram_bytes

    @property
    def estimate_label(self) -> str:
        """The provenance label of the latency: ``estimate:vela-<version>``."""
        return f"estimate:vela-{self.vela_version}"

    def protocol(self) -> dict:
        """How the figures were produced (tool, version, configuration)."""
        return {"tool": "ethos-u-vela", "vela_version": self.vela_version,
                "accelerator": self.accelerator, "system_config": self.system_config,
                "memory_mode": self.memory_mode, "optimise": self.optimise,
                "clock_hz": self.clock_hz, "estimate": True,
                "method": "Vela's performance model of the compiled command stream; "
                          "no hardware was run"}

    def to_dict(self) -> dict:
        """JSON-friendly form with units in the key names."""
        return {
            "network": self.network, "estimate": True, "source": self.estimate_label,
            "npu_cycles": self.npu_cycles, "total_cycles": self.total_cycles,
            "latency_s": self.latency_s, "sram_bytes": self.sram_bytes,
            "dram_bytes": self.dram_bytes, "on_chip_flash_bytes": self.on_chip_flash_bytes,
            "off_chip_flash_bytes": self.off_chip_flash_bytes,
            "arena_cache_bytes": self.arena_cache_bytes,
            "feature_map_bytes": self.feature_map_bytes,
            "weights_bytes": self.weights_bytes,
            "original_weights_bytes": self.original_weights_bytes, "macs": self.macs,
            "model_bytes": self.model_bytes, "npu_ops": self.npu_ops, "cpu_ops": self.cpu_ops,
            "cpu_op_share": self.cpu_op_share,
            "cpu_fallback": [c.to_dict() for c in self.cpu_fallback],
            "protocol": self.protocol(),
        }


def read_summary_csv(path: str | Path) -> dict[str, str]:
    """The one data row of Vela's ``*_summary_*.csv`` as a column → text mapping."""
    path = Path(path)
    if not path.is_file():
        raise VelaOutputError(f"Vela wrote no summary CSV at {path}; check Vela's log above")
    with path.open(newline="") as f:
        rows = list(csv.DictReader(f))
    if len(rows) != 1:
        raise VelaOutputError(f"{path}: expected one summary row, found {len(rows)}")
    return rows[0]


def read_per_layer_csv(path: str | Path) -> tuple[LayerEstimate, ...]:
    """Rows of Vela's ``*_per-layer.csv`` (written with ``--verbose-performance``)."""
    path = Path(path)
    if not path.is_file():
        return ()
    with path.open(newline="") as f:
        return tuple(LayerEstimate(op=r["Original Operator"], target=r["Target"],
                                   cycles=_int(r.get("Op Cycles")),
                                   macs=_int(r.get("MAC Count")), name=r["Name"])
                     for r in csv.DictReader(f))


def parse_op_counts(log: str) -> tuple[int, int]:
    """(npu_ops, cpu_ops) from Vela's ``NPU/CPU operators = N (P%)`` lines."""
    counts = {kind: int(n) for kind, n, _ in _CPU_COUNT.findall(log)}
    if set(counts) != {"CPU", "NPU"}:
        raise VelaOutputError("Vela's log has no 'CPU operators = N' / 'NPU operators = N' "
                              "lines; run it with --show-cpu-operations")
    return counts["NPU"], counts["CPU"]


def parse_warnings(log: str) -> dict[str, list[str]]:
    """Vela's reasons per output tensor: ``ofm name`` → the ``Reason:`` text of each warning."""
    reasons: dict[str, list[str]] = {}
    for m in _WARNING.finditer(log):
        lines = [ln.strip() for ln in m.group("body").splitlines() if ln.strip()]
        text = " ".join(ln.removeprefix("Reason:").strip() for ln in lines)
        reasons.setdefault(m.group("ofm"), []).append(f"{m.group('op')}: {text}")
    return reasons


def parse_cpu_fallback(log: str, layers: tuple[LayerEstimate, ...] = ()) -> tuple[CpuOp, ...]:
    """Every ``CPU: <type> = <tensor>`` line of the log, with the reason Vela gave for it.

    The log names Vela's internal operator (often ``Passthrough``); when the per-layer
    rows are given, the original TFLite operator of the same output tensor is used instead.
    """
    reasons = parse_warnings(log)
    original = {layer.name: layer.op for layer in layers if layer.target == "CPU"}
    out = []
    for op, tensor in _CPU_LINE.findall(log):
        why = reasons.get(tensor)
        out.append(CpuOp(original.get(tensor, op), tensor, "; ".join(why) if why else
                         "Vela gave no reason (a CPU-only operator type, or one fused "
                         "with a refused neighbour)"))
    return tuple(out)


def build_report(summary: dict[str, str], log: str, layers: tuple[LayerEstimate, ...],
                 model_bytes: int, optimise: str, vela_version: str) -> VelaReport:
    """Our schema from Vela's summary row, its log and per-layer rows.

    Raises:
        VelaOutputError: a column this reader needs is missing (another Vela version).
    """
    try:
        clock = float(summary["core_clock"])
        npu_ops, cpu_ops = parse_op_counts(log)
        total = _int(summary["cycles_total"])
        return VelaReport(
            network=summary["network"], accelerator=_accelerator(summary),
            system_config=summary["system_config"], memory_mode=summary["memory_mode"],
            optimise=optimise, clock_hz=clock, vela_version=vela_version,
            npu_cycles=_int(summary["cycles_npu"]), total_cycles=total,
            latency_s=total / clock if clock else math.nan,
            sram_bytes=_kib(summary["sram_memory_used"]),
            dram_bytes=_kib(summary["dram_memory_used"]),
            on_chip_flash_bytes=_kib(summary["on_chip_flash_memory_used"]),
            off_chip_flash_bytes=_kib(summary["off_chip_flash_memory_used"]),
            arena_cache_bytes=_kib(summary["arena_cache_size"]),
            weights_bytes=_int(summary["total_npu_encoded_weights"]),
            original_weights_bytes=_int(summary["total_original_weights"]),
            macs=_int(summary["nn_macs"]), model_bytes=int(model_bytes),
            npu_ops=npu_ops, cpu_ops=cpu_ops, cpu_fallback=parse_cpu_fallback(log, layers),
            layers=layers)
    except KeyError as exc:
        raise VelaOutputError(f"Vela's summary CSV has no column {exc.args[0]!r}; this reader "
                              f"was written for ethos-u-vela 5.x (found {vela_version})") from None


def _accelerator(summary: dict[str, str]) -> str:
    """``Ethos_U55_128`` (Vela's CSV spelling) → ``ethos-u55-128`` (its CLI spelling)."""
    return summary["accelerator_configuration"].lower().replace("_", "-")


def _kib(text: str) -> int:
    return int(round(float(text) * KIB))


def _int(text: str | None) -> int:
    if text is None or text == "":
        return 0
    value = float(text)
    return 0 if math.isnan(value) else int(round(value))
