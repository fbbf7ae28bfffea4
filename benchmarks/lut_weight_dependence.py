"""Trained vs seeded weights: per-layer QEMU instruction counts of one architecture.

The latency table (`qanas lut build`) measures every block with the seeded supernet's
weights, but a deployed subnet carries trained ones, and some kernel paths depend on the
requantization constants the weights lead to. This benchmark compiles one architecture
twice, with the table's seeded weights (`qanas.cost.lut.table.seeded_supernet`) and with a
trained supernet's (extracted and BN-recalibrated by the search's scorer, as the search
and the demo deploy it), both quantized, calibrated and run exactly as the table measures
(`CompiledModelMeasurer`, `--optimise speed`, the table's seeded images), and prints per
layer the two instruction counts and the requantization constants that choose a kernel's
path: per-channel shifts above -2 (`qk_all_narrow_shifts`: the whole layer takes the
scalar wide requantization), zero multipliers, and for a resize, mul or add its one
multiplier with its trailing zeros (the resize's tie-free form depends on them). The
committed table's prediction for the architecture is printed beside the totals.

    qanas train-supernet --space squeezenas-small --epochs 1 --steps-per-epoch 300 \\
        --out runs/lut_weights --force
    .venv/bin/python benchmarks/lut_weight_dependence.py --supernet runs/lut_weights/supernet.pt \\
        --arch min --target cortex-m7 --out benchmarks/results/lut_weight_dependence.json

Prints one JSON object (and writes it to `--out`). Measured (cortex-m7, min subnet, the
supernet of the command above): with the kernels of git d550722 seeded weights ran
7,826,040 instructions and trained ones 7,399,480, the decoder resize 709,680 against
284,040 (`benchmarks/results/lut_weight_dependence_min_before.json`); with the resize's
tie-free condition bounded by its accumulator range, 7,400,440 and 7,399,560
(`lut_weight_dependence_min.json`). See docs/search.md (latency table, Weights).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

NARROW_SHIFT = -2
"""Every channel's shift at or below this: the kernels' vector requantization applies."""


def trailing_zeros(value: int) -> int | None:
    """v2 of a non-zero integer (None for 0)."""
    return (value & -value).bit_length() - 1 if value else None


def scalar_requant(params: dict) -> dict:
    """The one multiplier/shift of a library call's nested parameters (resize, mul, add)."""
    found: dict = {}
    for value in params.values():
        if isinstance(value, dict):
            found.update(scalar_requant(value))
    if any(params.get(k) for k in ("multiplier", "a_multiplier")):  # 0: an unused part
        for key in ("multiplier", "shift", "a_multiplier", "b_multiplier", "right_shift"):
            if key in params:
                found[key] = int(params[key])
    if "multiplier" in found:
        found["multiplier_trailing_zeros"] = trailing_zeros(found["multiplier"])
    return found


def channel_requant(constants: list[np.ndarray]) -> dict:
    """Per-channel (multiplier, shift) pairs among a call's constant inputs: channels, those
    with a shift above `NARROW_SHIFT` and those with a zero multiplier."""
    pairs = []
    for mult, shift in zip(constants, constants[1:], strict=False):
        if (mult.dtype == np.int32 and shift.dtype == np.int32 and mult.shape == shift.shape
                and np.all((mult == 0) | (mult >= 1 << 30))
                and np.all((shift >= -62) & (shift <= 30))):
            pairs.append((mult.ravel(), shift.ravel()))
    if not pairs:
        return {}
    return {"channels": [int(m.size) for m, _ in pairs],
            "wide_shift_channels": [int(np.sum(s > NARROW_SHIFT)) for _, s in pairs],
            "max_shift": [int(s.max()) for _, s in pairs],
            "zero_multipliers": [int(np.sum(m == 0)) for m, _ in pairs]}


def requant_facts(compiled, call) -> dict:
    """What selects the requantization path of one plan call (see the module docstring)."""
    facts = {}
    library = getattr(compiled.kernels.get(call.kernel), "call", None)
    if library is not None:
        facts.update(scalar_requant(library.params))
    constants = [np.asarray(compiled.plan.constants[n]) for n in call.inputs
                 if n in compiled.plan.constants]
    facts.update(channel_requant(constants))
    return facts


def profile(measurer, compiled, image, name: str) -> tuple[float, list[dict]]:
    """Total and per-layer instruction counts with each layer's requantization facts."""
    result = measurer.run(compiled, image, name)
    calls = {c.index: c for c in compiled.plan.calls}
    layers = [{"index": layer["index"], "kernel": layer["kernel"],
               "implementation": layer["implementation"], "value": layer["value"],
               "requant": requant_facts(compiled, calls[layer["index"]])
               if layer["index"] in calls else {}}
              for layer in result.protocol["layers"]]
    return float(np.median(result.protocol["latency"])), layers


def main(argv: list[str] | None = None) -> int:
    """Measures one architecture with seeded and trained weights; prints the JSON."""
    import torch

    from compiler.version import KERNEL_GENERATION
    from qanas.cost.lut.committed import find_lut
    from qanas.cost.lut.measure import CompiledModelMeasurer, context_inputs
    from qanas.cost.lut.table import LatencyLUT, LUTLatencyModel, arch_id, seeded_supernet
    from qanas.search.scorer_setup import ScorerConfig, build_scorer
    from qanas.utils.io import atomic_write_json, source_commit, versions
    from targets import get_target

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--supernet", required=True, help="trained checkpoint (train-supernet)")
    parser.add_argument("--arch", default="min", help="subnet: seed, min, max or a config")
    parser.add_argument("--target", default="cortex-m7")
    parser.add_argument("--image-size", type=int, nargs=2, default=(64, 128))
    parser.add_argument("--seed", type=int, default=0, help="seeded weights and images")
    parser.add_argument("--work-dir", help="compiled models (default: a temp dir)")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    source = source_commit()  # the kernels measured
    size, target = tuple(args.image_size), get_target(args.target)
    setup = build_scorer(ScorerConfig(args.supernet, image_size=size, seed=args.seed))
    space, classes = setup.space, setup.num_classes
    cfg = space.resolve(args.arch)
    seeded = seeded_supernet(space, classes, args.seed)
    image, _ = context_inputs(seeded, space.seed_config(), size, args.seed)
    measurer = CompiledModelMeasurer(target, Path(args.work_dir or tempfile.mkdtemp()))
    models = {"seeded": seeded.extract(cfg).eval(),
              "trained": setup.evaluator.scorer.prepare(cfg)}
    totals, layers = {}, {}
    for weights, model in models.items():
        name = f"{weights}-{arch_id(cfg)}"
        totals[weights], layers[weights] = profile(measurer, measurer.compile(model, image, name),
                                                   image, name)
    lut_path = find_lut(space, target, size, classes)
    rows = [{"index": s["index"], "kernel": s["kernel"], "implementation": s["implementation"],
             "seeded": s["value"], "trained": t["value"], "difference": t["value"] - s["value"],
             "seeded_requant": s["requant"], "trained_requant": t["requant"]}
            for s, t in zip(layers["seeded"], layers["trained"], strict=True)]
    out = {"space": space.name, "arch": cfg.to_str(), "target": target.name,
           "image_size": list(size), "num_classes": classes, "unit": measurer.unit,
           "supernet": args.supernet, "checkpoint_sha256": setup.checkpoint_sha256,
           "kernel_generation": KERNEL_GENERATION, "commit": source["commit"],
           "kernels_modified": source["modified"],
           "seeded": totals["seeded"], "trained": totals["trained"],
           "trained_over_seeded_pct": 100.0 * (totals["trained"] / totals["seeded"] - 1.0),
           "table": str(lut_path) if lut_path else None,
           "table_prediction": (LUTLatencyModel(LatencyLUT.load(lut_path), space).predict(cfg).value
                                if lut_path is not None else None),
           "layers": rows, "versions": versions(),
           "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])])}
    if args.out:
        atomic_write_json(args.out, out)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
