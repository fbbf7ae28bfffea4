"""NPU-aware pruning of a search space, from Vela itself (no hand-written op list).

Before a search for an Ethos-U target, every option of every decision is tried on a
*probe subnet*: the space's seed network with that choice changed, exported to int8
TFLite and compiled by Vela. An option whose probe leaves operators on the CPU that the
seed network does not (compared as a multiset of operator types) is removed, with the
operators and the reasons Vela gave. The seed's own CPU operators, if any, belong to
the fixed part of the network and are reported as such.

Decisions with the same option list (the 20 superblocks of a SqueezeNAS space) are
tested as a group: one probe sets the option in every decision of the group; only when
that probe is not clean is the option tried decision by decision, so a space costs
about one probe per distinct option instead of one per (decision, option).

The result is cached as JSON in the run folder, keyed by space, target, image size,
number of classes, Vela and exporter versions: a resumed search does not probe again.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from qanas.errors import ConfigError
from qanas.space.base import SearchSpace, SubnetConfig
from qanas.space.restricted import RestrictedSpace

CACHE_NAME = "npu_pruning.json"


@dataclass(frozen=True)
class ProbeResult:
    """What one probe subnet left on the CPU: (op type, tensor, reason) per operator.

    ``error`` is set when the probe could not be exported or compiled at all.
    """

    cpu_ops: tuple[tuple[str, str, str], ...] = ()
    error: str | None = None


Probe = Callable[[SubnetConfig], ProbeResult]
"""Exports a subnet, runs Vela on it and reports the CPU operators (`qanas.cost.vela.vela_probe`)."""


@dataclass(frozen=True)
class RemovedChoice:
    """An option taken out of a decision, with the operators Vela left on the CPU."""

    decision: str
    option: str
    cpu_ops: tuple[tuple[str, str, str], ...]
    reason: str


@dataclass
class NpuPruning:
    """The outcome of `prune_for_npu`: the restricted space and why options left it."""

    key: dict
    removed: list[RemovedChoice] = field(default_factory=list)
    baseline_cpu_ops: tuple[tuple[str, str, str], ...] = ()
    probes: int = 0
    cached: bool = False

    def allowed(self, space: SearchSpace) -> dict[str, tuple[str, ...]]:
        """Decision name → options that stay."""
        gone = {(r.decision, r.option) for r in self.removed}
        return {d.name: tuple(o for o in d.options if (d.name, o) not in gone)
                for d in space.decisions}

    def restrict(self, space: SearchSpace) -> RestrictedSpace:
        """`space` without the removed options."""
        return RestrictedSpace(space, self.allowed(space))

    def to_dict(self) -> dict:
        """JSON form (the cache file and `qanas search --json`)."""
        return {"key": self.key, "probes": self.probes, "cached": self.cached,
                "baseline_cpu_ops": [_op_dict(o) for o in self.baseline_cpu_ops],
                "removed": [{"decision": r.decision, "option": r.option, "reason": r.reason,
                             "cpu_ops": [_op_dict(o) for o in r.cpu_ops]}
                            for r in self.removed]}

    @classmethod
    def from_dict(cls, data: dict) -> NpuPruning:
        """Inverse of `to_dict`."""
        def ops(rows):
            return tuple((o["op"], o["tensor"], o["reason"]) for o in rows)

        return cls(key=data["key"], probes=data["probes"],
                   baseline_cpu_ops=ops(data["baseline_cpu_ops"]),
                   removed=[RemovedChoice(r["decision"], r["option"], ops(r["cpu_ops"]),
                                          r["reason"]) for r in data["removed"]])


def _op_dict(op: tuple[str, str, str]) -> dict:
    return {"op": op[0], "tensor": op[1], "reason": op[2]}


def _with(space: SearchSpace, cfg: SubnetConfig, changes: dict[int, int]) -> SubnetConfig | None:
    """`cfg` with some choices changed and repaired; None when repair undoes a change."""
    choices = list(cfg.choices)
    for i, c in changes.items():
        choices[i] = c
    repaired = tuple(space.repair(choices))
    if any(repaired[i] != c for i, c in changes.items()):
        return None
    probe = SubnetConfig(space.name, repaired)
    return probe if space.is_valid(probe) else None


def _new_ops(result: ProbeResult, baseline: ProbeResult) -> tuple[tuple[str, str, str], ...]:
    """Operators of `result` beyond the baseline's, by operator type."""
    extra = Counter(o[0] for o in result.cpu_ops) - Counter(o[0] for o in baseline.cpu_ops)
    out = []
    for op in result.cpu_ops:
        if extra[op[0]] > 0:
            out.append(op)
            extra[op[0]] -= 1
    return tuple(out)


def _reason(result: ProbeResult, ops: tuple[tuple[str, str, str], ...]) -> str:
    if result.error:
        return f"the probe subnet could not be compiled for the NPU: {result.error}"
    kinds = ", ".join(sorted({o[0] for o in ops}))
    return f"Vela leaves {len(ops)} operator(s) on the CPU ({kinds}): {ops[0][2]}"


def prune_for_npu(space: SearchSpace, probe: Probe, key: dict,
                  log: Callable[[str], None] | None = None) -> NpuPruning:
    """Probes every option of `space` (grouped; see the module docstring).

    Args:
        space: the base search space.
        probe: runs one subnet through the NPU toolchain (`qanas.cost.vela.vela_probe`,
            or a fake in unit tests of the grouping logic).
        key: what the result depends on (stored with it).
        log: progress callback.

    Raises:
        ConfigError: the seed network itself cannot be compiled for the NPU, or every
            option of a decision was removed.
    """
    seed = space.seed_config()
    baseline = probe(seed)
    if baseline.error:
        raise ConfigError(f"the seed network of {space.name} cannot be compiled for the NPU "
                          f"({baseline.error}); the space cannot be searched for it")
    result = NpuPruning(key=key, baseline_cpu_ops=baseline.cpu_ops, probes=1)
    groups: dict[tuple[str, ...], list[int]] = {}
    for i, d in enumerate(space.decisions):
        groups.setdefault(d.options, []).append(i)

    def run(changes: dict[int, int]) -> tuple[ProbeResult, tuple] | None:
        cfg = _with(space, seed, changes)
        if cfg is None:
            return None
        outcome = probe(cfg)
        result.probes += 1
        return outcome, _new_ops(outcome, baseline)

    for options, members in groups.items():
        for j, label in enumerate(options):
            todo = [i for i in members if seed.choices[i] != j]
            if not todo:
                continue
            together = run({i: j for i in todo}) if len(todo) > 1 else None
            if together is not None and not together[0].error and not together[1]:
                continue  # clean in every decision of the group at once
            for i in todo:
                single = run({i: j})
                if single is None:
                    continue  # the space's own constraints forbid it with the seed
                outcome, ops = single
                if outcome.error or ops:
                    name = space.decisions[i].name
                    result.removed.append(RemovedChoice(name, label, ops, _reason(outcome, ops)))
                    if log:
                        log(f"NPU pruning: {name}={label} removed: {_reason(outcome, ops)}")
    result.restrict(space)  # raises if a decision lost every option
    return result


def cached_pruning(run_dir: str | Path, space: SearchSpace, probe: Probe, key: dict,
                   log: Callable[[str], None] | None = None) -> NpuPruning:
    """`prune_for_npu`, or its result from ``run_dir/npu_pruning.json`` for the same key."""
    from qanas.utils.io import atomic_write_json

    path = Path(run_dir) / CACHE_NAME
    if path.is_file():
        data = json.loads(path.read_text())
        if data.get("key") == key:
            pruning = NpuPruning.from_dict(data)
            pruning.cached = True
            return pruning
    pruning = prune_for_npu(space, probe, key, log)
    atomic_write_json(path, pruning.to_dict())
    return pruning


__all__ = ["CACHE_NAME", "NpuPruning", "ProbeResult", "RemovedChoice", "cached_pruning",
           "prune_for_npu"]
