"""`run_bench(BenchConfig)`: run a compiled model on a runner and compare with the host build.

The model runs on the runner (QEMU, host, qemu-user, a board on a serial port) and, as
the reference, the host build of the same emitted C runs on the same seeded input; the
result holds latency (median/min/max in the runner's unit: instructions under QEMU, cycles
on a board, seconds on the host), flash and SRAM, and whether the outputs match bit for
bit. An Ethos-U target gives Vela's estimates instead (`qanas.bench.npu`). `qanas bench`
maps its flags one to one onto `BenchConfig`.

Example:
    >>> run_bench(BenchConfig(model="out/proj", target="cortex-m4"))["latency"]  # doctest: +SKIP
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import numpy as np

from qanas.bench.runners import compile_if_model, make_runner, memory_summary, random_inputs
from qanas.utils.records import JsonRecord

VELA_OPTIMISE = {"size": "Size", "speed": "Performance"}
"""`optimise` of our compiler → Vela's strategy of the same intent."""


@dataclass(frozen=True, kw_only=True)
class BenchConfig(JsonRecord):
    """One benchmark: the model, the target and runner, and how it is run.

    Attributes:
        model: compiled project directory or ONNX model.
        target: target name (`targets.list_targets`).
        runner: qemu | host | qemu-user | serial:PORT (None: the target's).
        out: where an ONNX model is compiled (None: a temp dir).
        repeats, warmup: timed runs, and untimed runs first.
        flash, no_flash: how a serial runner puts the firmware on the board.
        per_layer: time every kernel.
        seed: seed of the input.
        force: overwrite `out`.
        optimise: size | speed (None: size); NPU targets: Vela's Size / Performance
            (those spellings too; None: Performance).
    """

    model: str
    target: str
    runner: str | None = None
    out: str | None = None
    repeats: int = 3
    warmup: int = 1
    flash: str | None = None
    no_flash: bool = False
    per_layer: bool = False
    seed: int = 0
    force: bool = False
    optimise: str | None = None


def run_bench(config: BenchConfig) -> dict:
    """Runs `config.model` as `config` says; returns the `qanas bench --json` record.

    Raises:
        ValueError: a Vela strategy for a CPU target, or a runner the target cannot have.
    """
    from targets import get_target

    target = get_target(config.target)
    if target.npu_config is not None:  # Ethos-U: Vela's estimates, nothing is executed
        from qanas.bench.npu import bench_npu

        strategy = VELA_OPTIMISE.get(config.optimise, config.optimise or "Performance")
        return bench_npu(config.model, target, config.out, config.force, strategy)
    optimise = config.optimise or "size"
    if optimise not in VELA_OPTIMISE:
        raise ValueError(f"--optimise {optimise} is Vela's spelling, for NPU targets; "
                         f"for {target.name} use {' or '.join(VELA_OPTIMISE)}")
    project = compile_if_model(config.model, target, config.out, force=config.force,
                               optimise=optimise)
    return _run_project(project, target, config)


def _run_project(project, target, config: BenchConfig) -> dict:
    from runtime.runners.base import read_io
    from runtime.runners.firmware_base import HostReferenceRunner

    in_specs, _ = read_io(project)
    inputs = {s.name: a for s, a in zip(in_specs, random_inputs(in_specs, config.seed),
                                        strict=True)}
    runner = make_runner(config.runner, target, config.warmup, config.per_layer, config.flash,
                         config.no_flash)
    result = runner.run(project, inputs, repeats=config.repeats)
    reference = HostReferenceRunner().run(project, inputs) if runner.name != "host" else result
    diffs = [float(np.max(np.abs(result.outputs[k].astype(np.float64)
                                 - reference.outputs[k].astype(np.float64)), initial=0.0))
             for k in reference.outputs]
    match = all(np.array_equal(result.outputs[k], reference.outputs[k])
                for k in reference.outputs)
    proto = result.protocol
    values = proto.get("latency", result.latency_s)
    unit = proto.get("unit", "seconds")
    sram = proto.get("sram_bytes") or {"arena": proto.get("arena_bytes"), "stack_peak": None,
                                       "static": None}
    return {
        "target": target.name, "runner": runner.name, "project": str(project),
        "latency": {"median": statistics.median(values), "min": min(values),
                    "max": max(values), "unit": unit},
        "runs": len(values),
        "flash_bytes": proto.get("flash_bytes"),
        "sram_bytes": {k: sram.get(k) for k in ("arena", "stack_peak", "static")},
        "memory": memory_summary(project),
        "outputs_match": bool(match), "max_abs_diff": max(diffs, default=0.0),
        "reference": "host build of the same C" if runner.name != "host" else "itself",
        "layers": proto.get("layers", []), "protocol": proto,
    }


__all__ = ["VELA_OPTIMISE", "BenchConfig", "run_bench"]
