"""Per-block latency lookup table (FBNet / SqueezeNAS style), measured on the target's runner.

**What an entry is.** A superblock of a SqueezeNAS space sees a fixed input shape
whatever the other blocks choose (every candidate of a superblock has the same
input/output channels and stride). Entry ``(signature, label)`` is candidate
``label`` compiled alone at that input shape and run on the target's runner: QEMU
instruction counts for Cortex-M (deterministic, ``-icount shift=0``), seconds on
the host. Entries are keyed by the block's *signature* (input C×H×W, output C,
stride, label), so superblocks of identical shape share one measurement; an
identity ``skip`` costs 0 (no kernel). A block compiled alone reads and writes NCHW
model tensors, so the compiler puts a layout transpose before and after its library
call, which the block does not have between library blocks of a subnet: on runners
with a per-layer profile (QEMU) the entry is the measurement less those transposes
(`Measurement.boundary`). Tables of format 2 kept them; they under-predicted subnets of
far fewer blocks than the references by up to 15 %.

**In context.** Instruction counts depend on the data (see `qanas.cost.lut.measure`),
so each block is calibrated and run on the activations that reach it in the
reference network (`context_inputs`; for a shared signature, those of its first
superblock), and every end-to-end measurement uses the same seeded images.

**Per-model overhead.** Each measured model carries a constant ``c`` (timer reads,
the call), measured by a two-point difference (`per_model_overhead`). A block's
cost is ``entry - c``; a subnet's end-to-end measurement carries ``c`` once.

**Fixed part.** Stem, head, decoder and final resize are the same in every subnet.
They are measured end to end through several references (default seed, min and
max: the heaviest, the lightest and the trained-from default): ``fixed = mean over
references of (measured - Σ (entry - c))``; the spread of those residuals is kept
in ``fixed_info`` as a check of additivity.

**Prediction** (`LUTLatencyModel`, a `LatencyModel`): ``fixed + Σ (entry - c)``.
Validation lives in `qanas.cost.lut.validation`; committed tables and their
lookup in `qanas.cost.lut.committed`.

The table is a versioned JSON file (``qanas-latency-lut/2``) with its protocol:
target, runner, unit, image size, classes, quantization spec, tool versions, date and
the command that built it.

Example:
    >>> lut = build_lut(space, (64, 128), CompiledModelMeasurer(target, work), 6)  # doctest: +SKIP
    >>> LUTLatencyModel(lut, space).predict(cfg)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from compiler.version import KERNEL_GENERATION
from qanas.cost.hardware import Latency
from qanas.cost.lut.measure import (
    Measurer,
    ModelInputs,
    context_inputs,
    per_model_overhead,
)
from qanas.errors import ConfigError
from qanas.space.base import SearchSpace, SubnetConfig
from qanas.utils.seeding import seeded

LUT_FORMAT = "qanas-latency-lut/3"
SKIP = "skip"
DEFAULT_REFERENCES = ("seed", "min", "max")
# protocol keys a resumed table must share with the build that continues it
RESUME_KEYS = ("target", "runner", "unit", "quant_spec", "space", "image_size", "num_classes",
               "seed", "context_reference", "kernel_generation")

__all__ = ["LUT_FORMAT", "BlockContext", "LUTLatencyModel", "LatencyLUT", "block_contexts",
           "blocks_sum", "build_lut", "measure_subnet", "required_entries", "seeded_supernet"]


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
            (`SearchSpace.block_shapes` is None; only the SqueezeNAS spaces have them).
    """
    shapes = space.block_shapes(tuple(image_size))
    if shapes is None:
        raise ConfigError(f"the per-block LUT supports the SqueezeNAS spaces (squeezenas-small, "
                          f"-large, -xlarge); {space.name!r} is not one of them")
    return [BlockContext(s.index, s.in_channels, s.in_hw, s.out_channels, s.stride)
            for s in shapes]


def required_entries(space: SearchSpace, image_size: tuple[int, int],
                     options: Sequence[str] | None = None) -> list[str]:
    """Every signature a complete table over `options` (default all) must hold, in order."""
    labels = options or space.decisions[0].options
    keys = [c.signature(lab) for c in block_contexts(space, image_size) for lab in labels
            if not (lab == SKIP and c.identity_skip)]
    return list(dict.fromkeys(keys))


# -- the table ----------------------------------------------------------------------------------
@dataclass
class LatencyLUT:
    """A per-block latency table: raw entries (signature → measured), overhead, fixed part."""

    space: str
    image_size: tuple[int, int]
    num_classes: int
    unit: str
    protocol: dict
    entries: dict[str, float] = field(default_factory=dict)
    fixed: float | None = None
    fixed_info: dict = field(default_factory=dict)
    overhead: float | None = None
    overhead_info: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The versioned JSON form."""
        return {"format": LUT_FORMAT, "space": self.space, "image_size": list(self.image_size),
                "num_classes": self.num_classes, "unit": self.unit, "protocol": self.protocol,
                "entries": dict(sorted(self.entries.items())), "overhead": self.overhead,
                "overhead_info": self.overhead_info, "fixed": self.fixed,
                "fixed_info": self.fixed_info}

    @classmethod
    def from_dict(cls, data: dict) -> LatencyLUT:
        """Inverse of `to_dict`; rejects other formats and unknown keys."""
        if data.get("format") != LUT_FORMAT:
            raise ConfigError(f"not a {LUT_FORMAT} file (format {data.get('format')!r}); "
                              "rebuild it with `qanas lut build`")
        known = {"format", "space", "image_size", "num_classes", "unit", "protocol", "entries",
                 "overhead", "overhead_info", "fixed", "fixed_info"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown LUT keys {unknown}; known: {sorted(known)}")
        return cls(data["space"], tuple(data["image_size"]), int(data["num_classes"]),
                   data["unit"], data["protocol"], {k: float(v) for k, v in data["entries"].items()},
                   data["fixed"], data.get("fixed_info") or {}, data.get("overhead"),
                   data.get("overhead_info") or {})

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

    def missing(self, space: SearchSpace, options: Sequence[str] | None = None) -> list[str]:
        """Signatures over `options` (default all of `space`'s) that the table lacks."""
        return [k for k in required_entries(space, self.image_size, options)
                if k not in self.entries]


def blocks_sum(lut: LatencyLUT, contexts: Sequence[BlockContext], cfg: SubnetConfig) -> float:
    """Σ (entry - overhead) over `cfg`'s blocks; raises `ConfigError` naming a missing entry."""
    overhead = float(lut.overhead or 0.0)
    total = 0.0
    for ctx, label in zip(contexts, cfg.labels(), strict=True):
        if label == SKIP and ctx.identity_skip:
            continue
        key = ctx.signature(label)
        if key not in lut.entries:
            raise ConfigError(f"the latency table has no entry {key!r} (block {ctx.index}, "
                              f"{label}); complete it with `qanas lut build --resume` covering "
                              f"{label!r}, or restrict the search to {lut.options()}")
        total += lut.entries[key] - overhead
    return total


class LUTLatencyModel:
    """`LatencyModel` from a measured table: fixed part + Σ block costs (source ``lut:<target>``)."""

    def __init__(self, lut: LatencyLUT, space: SearchSpace):
        if lut.space != space.name:
            raise ConfigError(f"the table is for space {lut.space!r}, not {space.name!r}")
        if lut.fixed is None or lut.overhead is None:
            raise ConfigError("the table has no fixed part (stem/head/decoder) or per-model "
                              "overhead yet; finish it with `qanas lut build --resume`")
        self.lut, self.space = lut, space
        self.contexts = block_contexts(space, lut.image_size)
        self.source = f"lut:{lut.protocol.get('target', '?')}"

    def predict(self, cfg: SubnetConfig) -> Latency:
        """Predicted latency of `cfg` in the table's unit."""
        return Latency(float(self.lut.fixed) + blocks_sum(self.lut, self.contexts, cfg),
                       self.lut.unit, self.source)


# -- building -----------------------------------------------------------------------------------
def seeded_supernet(space: SearchSpace, num_classes: int, seed: int):
    """The supernet whose weights every measurement of a table uses (seeded init, eval mode)."""
    from qanas.supernet import build_supernet

    with seeded(seed):
        return build_supernet(space, num_classes).eval()


def _check_resume(lut: LatencyLUT, expected: dict) -> None:
    for key in RESUME_KEYS:
        have = lut.protocol.get(key)
        if key in expected and have is not None and have != expected[key]:
            raise ConfigError(f"cannot resume: the table was measured with {key}={have!r}, this "
                              f"build has {key}={expected[key]!r}; use another --out or the "
                              "table's settings")


def build_lut(space: SearchSpace, image_size: tuple[int, int], measurer: Measurer,
              num_classes: int = 4, options: Sequence[str] | None = None,
              references: Sequence[SubnetConfig] | None = None, path: str | Path | None = None,
              resume: LatencyLUT | None = None, seed: int = 0, command: str | None = None,
              log: Callable[[str], None] | None = None) -> LatencyLUT:
    """Measures every (context, option) entry once, the overhead, then the fixed part.

    Args:
        space: a SqueezeNAS space.
        image_size: input (H, W) of the deployed network.
        measurer: a `Measurer` (the real one compiles and runs; tests pass a fake).
        num_classes: classifier width of the fixed part.
        options: labels to measure (default: all); the references' labels are added.
        references: subnets measured end to end for the fixed part (default seed, min, max);
            the first one also defines every block's context.
        path: if given, the table is written after every measurement (a crash keeps them).
        resume: a partial table of the same protocol whose measurements are kept.
        seed: seeds the supernet weights and the images.
        command: the command line that rebuilds the table (recorded in the protocol).
        log: progress callback.

    Raises:
        ConfigError: an unknown option, or a `resume` table of another protocol.
    """
    contexts = block_contexts(space, image_size)
    all_options = space.decisions[0].options
    references = list(references or [space.resolve(r) for r in DEFAULT_REFERENCES])
    ref_labels = [lab for r in references for lab in r.labels()]
    wanted = list(dict.fromkeys([*(options or all_options), *ref_labels]))
    bad = [o for o in wanted if o not in all_options]
    if bad:
        raise ConfigError(f"unknown options {bad}; {space.name} has {', '.join(all_options)}")
    proto = measurer.protocol()
    setting = {"space": space.name, "image_size": list(image_size), "num_classes": num_classes,
               "seed": seed, "context_reference": references[0].to_str(),
               "kernel_generation": KERNEL_GENERATION}
    if resume is not None:
        _check_resume(resume, {**proto, **setting})
    lut = resume or LatencyLUT(space.name, tuple(image_size), num_classes, measurer.unit, proto)
    previous = lut.protocol.get("options") or []
    lut.protocol.update(setting)
    lut.protocol["options"] = [o for o in all_options if o in {*previous, *wanted}]
    lut.protocol["method"] = (
        "block in context: each candidate compiled alone at its superblock's input shape, "
        "calibrated and run on the activations reaching that superblock (the first of its "
        "signature) in the context reference; entry = measured less the layout transposes "
        "at the block model's own input and output (per-layer profile); cost = entry - "
        "per-model overhead; fixed = mean over references of (measured - sum of block "
        "costs)")
    if command:
        lut.protocol["command"] = command

    started = time.perf_counter()
    spent_before = float(lut.protocol.get("build_seconds") or 0.0)

    def save() -> None:
        lut.protocol["build_seconds"] = round(spent_before + time.perf_counter() - started, 1)
        if path is not None:
            lut.save(path)

    net = seeded_supernet(space, num_classes, seed)
    image, per_block = context_inputs(net, references[0], image_size, seed)
    todo: dict[str, tuple[BlockContext, str]] = {}
    for ctx in contexts:
        for label in wanted:
            key = ctx.signature(label)
            if not (label == SKIP and ctx.identity_skip) and key not in lut.entries:
                todo.setdefault(key, (ctx, label))
    changed = bool(todo) or lut.overhead is None
    for i, (key, (ctx, label)) in enumerate(todo.items()):
        module = net.choice_blocks[ctx.index].candidates[all_options.index(label)]
        start = time.perf_counter()
        m = measurer.measure(module, per_block[ctx.index], key)
        lut.entries[key] = m.value - m.boundary
        save()
        if log:
            log(f"entry {i + 1}/{len(todo)} {key}: {m.value:.6g} {m.unit} "
                f"({time.perf_counter() - start:.1f} s)")
    if lut.overhead is None:
        lut.overhead_info = per_model_overhead(measurer, seed)
        lut.overhead = lut.overhead_info["value"]
        save()
        if log:
            log(f"per-model overhead {lut.overhead:.6g} {lut.unit}")
    measured = {r["reference"]: r["measured"] for r in lut.fixed_info.get("references", [])}
    for ref in references:
        if ref.to_str() not in measured:
            changed = True
            measured[ref.to_str()] = measure_subnet(space, ref, image, measurer, num_classes,
                                                    seed, net)
            if log:
                log(f"reference {ref.to_str()}: {measured[ref.to_str()]:.6g} {lut.unit}")
            # kept at once (the fixed part stays unset until every reference is measured):
            # an interrupted build resumes without measuring it again
            lut.fixed, lut.fixed_info = None, {"references": [
                {"reference": k, "measured": v} for k, v in measured.items()]}
            save()
    _set_fixed(lut, contexts, [(r, measured[r.to_str()]) for r in references])
    if changed or "built" not in lut.protocol:  # a finished table resumed stays as it was
        lut.protocol["built"] = datetime.now(timezone.utc).isoformat(timespec="seconds")
        save()
    if log:
        log(f"fixed part {lut.fixed:.6g} {lut.unit} (residual spread "
            f"{lut.fixed_info['spread_pct']:.3f} % of the fixed part)")
    return lut


def _set_fixed(lut: LatencyLUT, contexts: Sequence[BlockContext],
               measured: Sequence[tuple[SubnetConfig, float]]) -> None:
    rows = [{"reference": cfg.to_str(), "measured": value,
             "residual": value - blocks_sum(lut, contexts, cfg)} for cfg, value in measured]
    residuals = np.array([r["residual"] for r in rows])
    lut.fixed = float(residuals.mean())
    lut.fixed_info = {"references": rows, "method": "mean over references of "
                      "(measured - sum(entry - overhead))",
                      "spread_pct": float(np.ptp(residuals) / abs(lut.fixed) * 100.0)}


def measure_subnet(space: SearchSpace, cfg: SubnetConfig, image: ModelInputs,
                   measurer: Measurer, num_classes: int = 4, seed: int = 0,
                   supernet=None) -> float:
    """End-to-end measured latency of subnet `cfg` on `image` (the table's weights seed).

    `supernet` (built with `seed`) saves rebuilding it; it is not modified.
    """
    subnet = (supernet or seeded_supernet(space, num_classes, seed)).extract(cfg).eval()
    return measurer.measure(subnet, image, f"subnet-{arch_id(cfg)}").value


def arch_id(cfg: SubnetConfig) -> str:
    """A short stable id of an architecture (a folder name)."""
    import hashlib

    return hashlib.sha256(cfg.to_str().encode()).hexdigest()[:12]
