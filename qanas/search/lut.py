"""Per-block latency lookup table (FBNet / SqueezeNAS style), measured on the target's runner.

**What an entry is.** A superblock of a SqueezeNAS space sees a fixed input shape
whatever the other blocks choose (every candidate of a superblock has the same
input/output channels and stride). So the latency of candidate ``label`` in
superblock ``i`` *in context* is that of the block alone on an input of its real
shape. Each entry is measured by building the candidate as a module (from a
seeded supernet), quantizing it int8 with Brevitas (`quantize_model`,
`calibrate`), exporting QDQ ONNX, compiling it for the target (`compile_model`)
and running it on the target's runner: QEMU instruction counts for Cortex-M
(deterministic, ``-icount shift=0``), seconds on the host. Entries are keyed by
the block's *signature* (input C×H×W, output C, stride, label), so superblocks of
identical shape share one measurement; an identity ``skip`` costs 0 (no kernel).

**Fixed part.** Stem, head, decoder and final resize are the same in every subnet.
They are measured once, end to end: ``fixed = measured(reference subnet) − Σ
entries(reference)``, which also absorbs the per-model constant of the block
measurements (harness timer, call overhead) since every subnet has the same
number of blocks. The reference is the seed network unless given.

**Prediction** (`LUTLatencyModel`, a `LatencyModel`): ``fixed + Σ entries``.
**Validation** (`validate_lut`): predicted vs measured end-to-end latency on
held-out subnets: MAPE, share within ±10 %, Kendall τ.

The table is a versioned JSON file (``qanas-latency-lut/1``) with its protocol:
target, runner, unit, image size, classes, quantization spec, tool versions.

Example:
    >>> lut = build_lut(space, target, (64, 64), CompiledModelMeasurer(target, work))  # doctest: +SKIP
    >>> LUTLatencyModel(lut, space).predict(cfg)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn

from qanas.errors import ConfigError
from qanas.search.hw import Latency
from qanas.space.base import SearchSpace, SubnetConfig

LUT_FORMAT = "qanas-latency-lut/1"
SKIP = "skip"


# -- block contexts ---------------------------------------------------------------------------
@dataclass(frozen=True)
class BlockContext:
    """Superblock `index` of a space at one image size: its input shape, output channels, stride."""

    index: int
    in_channels: int
    in_hw: tuple[int, int]
    out_channels: int
    stride: int

    @property
    def identity_skip(self) -> bool:
        """True when ``skip`` is the identity here (no kernel, zero cost)."""
        return self.stride == 1 and self.in_channels == self.out_channels

    def signature(self, label: str) -> str:
        """The LUT key of candidate `label` in this context, e.g. ``16x32x32-24-s2:k3e6g1``."""
        h, w = self.in_hw
        return f"{self.in_channels}x{h}x{w}-{self.out_channels}-s{self.stride}:{label}"


def block_contexts(space: SearchSpace, image_size: tuple[int, int]) -> list[BlockContext]:
    """The context of every superblock of a SqueezeNAS space at `image_size`.

    Raises:
        ConfigError: a space whose blocks do not have candidate-independent shapes
            (only the SqueezeNAS spaces are supported so far).
    """
    from qanas.space.squeezenas import SqueezeNASSpace, _out_hw

    if not isinstance(space, SqueezeNASSpace):
        raise ConfigError(f"the per-block LUT supports the SqueezeNAS spaces (squeezenas-small, "
                          f"-large, -xlarge); {space.name!r} is not one of them")
    hw = _out_hw(tuple(image_size), 2)  # after the stride-2 stem
    out = []
    for plan in space.plans:
        out.append(BlockContext(plan.index, plan.in_channels, hw, plan.out_channels, plan.stride))
        hw = _out_hw(hw, plan.stride)
    return out


# -- measuring ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Measurement:
    """One measured latency with its unit and what the runner reported."""

    value: float
    unit: str
    protocol: dict = field(default_factory=dict)


class Measurer(Protocol):
    """Measures the int8 latency of a float model on one target (a fake one in tests)."""

    unit: str

    def measure(self, model: nn.Module, input_shape: tuple[int, ...], name: str) -> Measurement:
        """Latency of `model` (quantized, compiled, run) on an input of `input_shape`."""
        ...

    def protocol(self) -> dict:
        """Target, runner, unit and tool versions of the measurements."""
        ...


class CompiledModelMeasurer:
    """Quantize (Brevitas) → QDQ ONNX → `compile_model` → the target's runner.

    Args:
        target: the `Target`.
        work_dir: where ONNX files and C projects are written (one folder per model).
        repeats: timed runs per model; the median is kept (QEMU counts are exact: 1 is enough).
        runner: runner name (default: the target's, i.e. qemu for Cortex-M, host for host).
        seed: seeds calibration data and inputs.
    """

    def __init__(self, target, work_dir: str | Path, repeats: int = 1, runner: str | None = None,
                 seed: int = 0):
        from qanas.cli.commands.bench import make_runner

        self.target = target
        self.work_dir = Path(work_dir)
        self.repeats = int(repeats)
        self.seed = seed
        self.runner = make_runner(runner, target, warmup=0, per_layer=False)
        self.unit = getattr(self.runner, "unit", "s") if self.runner.name != "host" else "s"

    def measure(self, model: nn.Module, input_shape: tuple[int, ...], name: str) -> Measurement:
        """See `Measurer.measure`."""
        from compiler.driver import compile_model
        from qanas.cli.commands.bench import random_inputs
        from qanas.quant import QuantSpec, calibrate, export_qdq, quantize_model
        from runtime.runners.base import read_io

        folder = self.work_dir / _safe(name)
        gen = torch.Generator().manual_seed(self.seed)
        model = model.eval()
        qmodel = quantize_model(model, QuantSpec())
        calibrate(qmodel, [torch.randn(*input_shape, generator=gen) for _ in range(2)])
        onnx_path = export_qdq(qmodel, torch.randn(*input_shape, generator=gen),
                               folder / "model.onnx")
        project = compile_model(onnx_path, self.target, folder / "project", force=True).out_dir
        specs, _ = read_io(project)
        inputs = {s.name: a for s, a in zip(specs, random_inputs(specs, self.seed), strict=True)}
        result = self.runner.run(project, inputs, repeats=self.repeats)
        values = result.protocol.get("latency") if self.unit != "s" else result.latency_s
        proto = {k: result.protocol.get(k) for k in ("runner", "unit", "toolchain", "emulator",
                                                     "compiler_version")}
        return Measurement(float(statistics.median(values)), self.unit, proto)

    def protocol(self) -> dict:
        """See `Measurer.protocol`."""
        from qanas.utils.io import versions

        proto = {"target": self.target.name, "runner": self.runner.name, "unit": self.unit,
                 "repeats": self.repeats, "versions": versions()}
        if self.runner.name == "qemu":
            from runtime.runners.qemu import qemu_version

            proto["emulator"] = {"version": qemu_version(), "machine": self.target.emulator,
                                 "icount_shift": 0}
        proto["toolchain"] = {"cc": self.target.toolchain.cc,
                              "cflags": list(self.target.toolchain.cflags),
                              "version": _tool_version(self.target.toolchain.cc)}
        return proto


def _tool_version(cc: str) -> str:
    import subprocess

    try:
        return subprocess.run([cc, "--version"], capture_output=True, text=True,
                              check=True).stdout.splitlines()[0]
    except (OSError, subprocess.CalledProcessError, IndexError):
        return "unknown"


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-." else "_" for c in name)


# -- the table ----------------------------------------------------------------------------------
@dataclass
class LatencyLUT:
    """A per-block latency table: entries (signature → value), the fixed part, the protocol."""

    space: str
    image_size: tuple[int, int]
    num_classes: int
    unit: str
    protocol: dict
    entries: dict[str, float] = field(default_factory=dict)
    fixed: float | None = None
    fixed_info: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The versioned JSON form."""
        return {"format": LUT_FORMAT, "space": self.space, "image_size": list(self.image_size),
                "num_classes": self.num_classes, "unit": self.unit, "protocol": self.protocol,
                "entries": dict(sorted(self.entries.items())), "fixed": self.fixed,
                "fixed_info": self.fixed_info}

    @classmethod
    def from_dict(cls, data: dict) -> LatencyLUT:
        """Inverse of `to_dict`; rejects other formats and unknown keys."""
        if data.get("format") != LUT_FORMAT:
            raise ConfigError(f"not a {LUT_FORMAT} file (format {data.get('format')!r}); "
                              "rebuild it with `qanas lut build`")
        known = {"format", "space", "image_size", "num_classes", "unit", "protocol", "entries",
                 "fixed", "fixed_info"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown LUT keys {unknown}; known: {sorted(known)}")
        return cls(data["space"], tuple(data["image_size"]), int(data["num_classes"]),
                   data["unit"], data["protocol"], {k: float(v) for k, v in data["entries"].items()},
                   data["fixed"], data.get("fixed_info") or {})

    def save(self, path: str | Path) -> Path:
        """Writes the table atomically."""
        from qanas.utils.io import atomic_write_json

        return atomic_write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> LatencyLUT:
        """Reads a table written by `save`."""
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"no latency table at {path}; build one with `qanas lut build`")
        return cls.from_dict(json.loads(path.read_text()))

    def options(self) -> list[str]:
        """Labels with at least one measured entry."""
        return sorted({k.rsplit(":", 1)[1] for k in self.entries} | {SKIP})


def blocks_sum(lut: LatencyLUT, contexts: Sequence[BlockContext], cfg: SubnetConfig) -> float:
    """Σ of the entries of `cfg`'s blocks; raises `ConfigError` naming a missing entry."""
    total = 0.0
    for ctx, label in zip(contexts, cfg.labels(), strict=True):
        if label == SKIP and ctx.identity_skip:
            continue
        key = ctx.signature(label)
        if key not in lut.entries:
            raise ConfigError(f"the latency table has no entry {key!r} (block {ctx.index}, "
                              f"{label}); rebuild it with `qanas lut build --options` covering "
                              f"{label!r}, or restrict the search to {lut.options()}")
        total += lut.entries[key]
    return total


class LUTLatencyModel:
    """`LatencyModel` from a measured table: fixed part + Σ block entries (source ``lut:<target>``)."""

    def __init__(self, lut: LatencyLUT, space: SearchSpace):
        if lut.space != space.name:
            raise ConfigError(f"the table is for space {lut.space!r}, not {space.name!r}")
        if lut.fixed is None:
            raise ConfigError("the table has no fixed part (stem/head/decoder) yet; finish "
                              "`qanas lut build` (it measures the reference subnet last)")
        self.lut, self.space = lut, space
        self.contexts = block_contexts(space, lut.image_size)
        self.source = f"lut:{lut.protocol.get('target', '?')}"

    def predict(self, cfg: SubnetConfig) -> Latency:
        """Predicted latency of `cfg` in the table's unit."""
        return Latency(float(self.lut.fixed) + blocks_sum(self.lut, self.contexts, cfg),
                       self.lut.unit, self.source)


# -- building -----------------------------------------------------------------------------------
def _supernet(space: SearchSpace, num_classes: int, seed: int):
    torch.manual_seed(seed)
    return space.build_supernet(num_classes).eval()


def build_lut(space: SearchSpace, image_size: tuple[int, int], measurer: Measurer,
              num_classes: int = 4, options: Sequence[str] | None = None,
              reference: SubnetConfig | None = None, path: str | Path | None = None,
              resume: LatencyLUT | None = None, seed: int = 0,
              log: Callable[[str], None] | None = None) -> LatencyLUT:
    """Measures every (context, option) entry once, then the fixed part; see the module docstring.

    Args:
        space: a SqueezeNAS space.
        image_size: input (H, W) of the deployed network.
        measurer: a `Measurer` (the real one compiles and runs; tests pass a fake).
        num_classes: classifier width of the fixed part.
        options: labels to measure (default: all); the reference's labels are added.
        reference: subnet measured end to end for the fixed part (default: the seed network).
        path: if given, the table is written after every entry (a crash keeps what was measured).
        resume: a partial table of the same protocol whose entries are kept.
        seed: seeds the supernet weights.
        log: progress callback.
    """
    contexts = block_contexts(space, image_size)
    all_options = space.decisions[0].options
    reference = reference or space.seed_config()
    wanted = list(dict.fromkeys([*(options or all_options), *reference.labels()]))
    bad = [o for o in wanted if o not in all_options]
    if bad:
        raise ConfigError(f"unknown options {bad}; {space.name} has {', '.join(all_options)}")
    lut = resume or LatencyLUT(space.name, tuple(image_size), num_classes, measurer.unit,
                               measurer.protocol())
    lut.protocol.setdefault("options", wanted)
    lut.protocol.update(image_size=list(image_size), num_classes=num_classes, space=space.name,
                        seed=seed, method="block in context: each candidate compiled alone at "
                        "its superblock's input shape; fixed = reference - sum(blocks)")
    net = _supernet(space, num_classes, seed)
    blocks = net.choice_blocks
    todo = []
    for ctx in contexts:
        for label in wanted:
            key = ctx.signature(label)
            if (label == SKIP and ctx.identity_skip) or key in lut.entries or \
                    key in (k for k, _, _ in todo):
                continue
            todo.append((key, ctx, label))
    for i, (key, ctx, label) in enumerate(todo):
        module = blocks[ctx.index].candidates[all_options.index(label)]
        start = time.perf_counter()
        m = measurer.measure(module, (1, ctx.in_channels, *ctx.in_hw), key)
        lut.entries[key] = m.value
        if path is not None:
            lut.save(path)
        if log:
            log(f"entry {i + 1}/{len(todo)} {key}: {m.value:.6g} {m.unit} "
                f"({time.perf_counter() - start:.1f} s)")
    if lut.fixed is None or lut.fixed_info.get("reference") != reference.to_str():
        measured = measure_subnet(space, reference, image_size, measurer, num_classes, seed)
        lut.fixed = measured - blocks_sum(lut, contexts, reference)
        lut.fixed_info = {"reference": reference.to_str(), "measured": measured,
                          "method": "reference - sum(blocks)"}
        if path is not None:
            lut.save(path)
        if log:
            log(f"fixed part {lut.fixed:.6g} {lut.unit} (reference measured {measured:.6g})")
    return lut


def measure_subnet(space: SearchSpace, cfg: SubnetConfig, image_size: tuple[int, int],
                   measurer: Measurer, num_classes: int = 4, seed: int = 0) -> float:
    """End-to-end measured latency of subnet `cfg` (same weights seed as the table's blocks)."""
    subnet = _supernet(space, num_classes, seed).extract(cfg).eval()
    return measurer.measure(subnet, (1, 3, *image_size), f"subnet-{_arch_id(cfg)}").value


def _arch_id(cfg: SubnetConfig) -> str:
    import hashlib

    return hashlib.sha256(cfg.to_str().encode()).hexdigest()[:12]


# -- validation ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class LUTValidation:
    """Predicted vs measured end-to-end latency on held-out subnets.

    Attributes:
        n: subnets measured.
        mape: mean absolute percentage error, in percent.
        within_10: share of subnets whose prediction is within ±10 % of the measurement.
        max_ape: worst absolute percentage error, in percent.
        kendall_tau: rank agreement of predicted and measured latency.
        rows: per subnet: arch, predicted, measured, error in percent.
        unit: the table's unit.
    """

    n: int
    mape: float
    within_10: float
    max_ape: float
    kendall_tau: float | None
    rows: tuple[dict, ...]
    unit: str

    def to_dict(self) -> dict:
        """JSON-friendly form."""
        return {"n": self.n, "mape": self.mape, "within_10": self.within_10,
                "max_ape": self.max_ape, "kendall_tau": self.kendall_tau,
                "unit": self.unit, "rows": list(self.rows)}


def validation_stats(archs: Sequence[str], predicted: Sequence[float],
                     measured: Sequence[float], unit: str = "") -> LUTValidation:
    """MAPE, share within ±10 %, worst error and Kendall τ of predictions vs measurements.

    Raises:
        ConfigError: mismatched lengths, no subnets, or a non-positive measurement.
    """
    p, m = np.asarray(predicted, dtype=float), np.asarray(measured, dtype=float)
    if p.shape != m.shape or len(p) != len(archs) or len(p) == 0:
        raise ConfigError(f"validation needs as many predictions as measurements (> 0), got "
                          f"{len(p)} and {len(m)}")
    if np.any(m <= 0):
        raise ConfigError("a measured latency is <= 0; the runner's report is broken")
    ape = np.abs(p - m) / m * 100.0
    tau = None
    if len(p) >= 2:
        from qanas.search.rankcorr import rank_correlation

        t = rank_correlation(p, m, ks=()).kendall_tau
        tau = None if np.isnan(t) else t
    rows = tuple({"arch": a, "predicted": float(pp), "measured": float(mm),
                  "error_pct": float((pp - mm) / mm * 100.0)}
                 for a, pp, mm in zip(archs, p, m, strict=True))
    return LUTValidation(len(p), float(ape.mean()), float(np.mean(ape <= 10.0)),
                         float(ape.max()), tau, rows, unit)


def held_out_subnets(space: SearchSpace, lut: LatencyLUT, n: int, seed: int) -> list[SubnetConfig]:
    """`n` distinct random subnets using only the table's options, never its reference."""
    options = lut.protocol.get("options") or lut.options()
    all_options = space.decisions[0].options
    allowed = [all_options.index(o) for o in options]
    rng = np.random.default_rng(seed)
    reference = lut.fixed_info.get("reference")
    out: dict[str, SubnetConfig] = {}
    for _ in range(100 * n):
        if len(out) >= n:
            break
        cfg = space.decode([allowed[int(rng.integers(len(allowed)))] for _ in space.decisions])
        if cfg.to_str() != reference:
            out.setdefault(cfg.to_str(), cfg)
    return list(out.values())


def validate_lut(lut: LatencyLUT, space: SearchSpace, measurer: Measurer,
                 subnets: Sequence[SubnetConfig], seed: int = 0,
                 log: Callable[[str], None] | None = None) -> LUTValidation:
    """Measures each subnet end to end and compares with the table's prediction."""
    model = LUTLatencyModel(lut, space)
    archs, pred, meas = [], [], []
    for i, cfg in enumerate(subnets):
        value = measure_subnet(space, cfg, lut.image_size, measurer, lut.num_classes, seed)
        archs.append(cfg.to_str())
        pred.append(model.predict(cfg).value)
        meas.append(value)
        if log:
            log(f"held-out {i + 1}/{len(subnets)}: predicted {pred[-1]:.6g}, measured "
                f"{value:.6g} ({(pred[-1] - value) / value * 100:+.2f} %)")
    return validation_stats(archs, pred, meas, lut.unit)
