"""Demo stage 3: the search's latency figures checked against measured runs on the target."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from qanas.search.archive import EvalRecord


def spread_over_latency(front: list[EvalRecord], first: EvalRecord, n: int) -> list[EvalRecord]:
    """`first`, then up to ``n - 1`` other front records spread evenly over latency."""
    others = sorted((r for r in front if r.arch != first.arch), key=lambda r: r.latency)
    if n <= 1 or not others:
        return [first]
    picks = np.unique(np.linspace(0, len(others) - 1, min(n - 1, len(others))).round())
    return [first] + [others[int(i)] for i in picks]


def validate_latency(records: list[EvalRecord], scorer, hw, target: str, out: Path,
                     example, optimise: str) -> dict:
    """Compiles each subnet in the search's ``--optimise`` mode, runs it on the target's
    runner, compares with the search's figure.

    The prediction is the latency the search used (`hw.profile`: the committed
    per-block table when one matches, else the analytic model, with a mixed-precision
    subnet's 4-bit convs at the int4 rates); the subnet is compiled with its weight bits
    (`qanas.train.standalone.subnet_quant_spec`) and measured on the target's runner (QEMU
    instruction count for Cortex-M). Returns the
    `lut_validation` section: MAPE, share within ±10 %, Kendall τ and one row per
    subnet (`qanas.cost.lut.validation.validation_stats`).
    """
    from qanas.bench.runners import random_inputs
    from qanas.cost.lut.validation import validation_stats
    from qanas.demo.deploy import compile_for_target
    from qanas.quant import export_qdq
    from qanas.space.bits import arch_of, parse_config
    from qanas.train.standalone import subnet_quant_spec
    from qanas.utils import progress
    from runtime.runners import get_runner
    from runtime.runners.base import read_io

    runner = get_runner("qemu", target=target)
    archs, predicted, measured = [], [], []
    unit = source = measured_unit = None
    for i, record in enumerate(progress(records, desc="latency check on the target")):
        cfg = parse_config(record.arch)
        latency = hw.profile(cfg).latency
        unit, source = latency.unit, latency.source
        subnet = scorer.prepare(arch_of(cfg))
        spec = subnet_quant_spec(scorer.spec, cfg, subnet, scorer.image_size,
                                 scorer.supernet.num_classes)
        qmodel = scorer.quantize(subnet, spec=spec)
        onnx_path = export_qdq(qmodel, example, out / f"subnet{i}.onnx")
        compiled = compile_for_target(onnx_path, target, out / f"subnet{i}", optimise)
        in_specs, _ = read_io(compiled.out_dir)
        inputs = dict(zip((s.name for s in in_specs), random_inputs(in_specs, seed=i),
                          strict=True))
        result = runner.run(compiled.out_dir, inputs)
        archs.append(record.arch)
        predicted.append(latency.value)
        measured.append(float(np.median(result.protocol["latency"])))
        measured_unit = result.protocol["unit"]
    stats = validation_stats(archs, predicted, measured, unit or "").to_dict()
    return {**stats, "source": source, "measured_unit": measured_unit, "target": target,
            "runner": runner.name, "optimise": optimise,
            "comparable": unit == measured_unit}
