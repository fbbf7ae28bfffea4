"""The fused inverted residual against its three unfused library kernels, on Cortex-M.

Two squeezenas-small blocks at 32×64 (NHWC): ``k3s1_res`` (16 → 96 → 16, 3×3 stride 1,
residual add) and ``k3s2`` (16 → 96 → 24, 3×3 stride 2; a block that changes shape has no
residual). Each runs once as `qanas_inverted_residual_s8` and once as the unfused chain of
library kernels on the same shapes: `qanas_pointwise_conv_s8` (expand),
`qanas_depthwise_conv2d_s8`, `qanas_pointwise_conv_s8` (project) and, with a residual,
`qanas_add_s8`. One bare-metal driver per target (tests/support/kernel_library_util.py) brackets
every call by SysTick reads under QEMU ``-icount shift=0``; every output is checked
bit-exact against the NumPy reference. Printed: MAC per instruction of both (the same
MACs: expand + depthwise + project), the fused/unfused instruction ratio, and the fused
kernel's scratch against the expanded tensor the unfused chain holds in full (its
depthwise input and output are both that size). JSON to benchmarks/results/mcu_irb.json.

``--int4``: each block runs the fused kernel with int8 expand / project weights, with int4
ones (packed two per byte, the int4 convolutions inside the block; the depthwise is int8
in all), and with only one of the two int4 (recorded in the JSON: which stage the change
comes from); the variants of a block share every draw but the weights' width (the int4
weights are the int8 ones shifted right by 4), since the library's instruction counts
depend a little on the data (clamps, zero points). Printed: the instructions of int8 and int4, their ratio, the weight
bytes of both (expand + depthwise + project), and the change the latency model predicts
for the int4 block (`targets.latency.layer_cycles` of its expand and project at the
target's fitted int4 rates less at the int8 ones, `qanas.cost.int4_latency`) against the
measured change. JSON to benchmarks/results/mcu_irb_int4.json.

Usage: .venv/bin/python benchmarks/mcu_irb.py [--targets cortex-m4 cortex-m55] [--int4]
       [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

BLOCKS = {  # name → irb_case arguments (squeezenas-small blocks at 32x64)
    "k3s1_res": dict(h=32, w=64, cin=16, expanded=96, cout=16, k=3, stride=1, residual=True),
    "k3s2": dict(h=32, w=64, cin=16, expanded=96, cout=24, k=3, stride=2),
}

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "mcu_irb.json"
DEFAULT_OUT_INT4 = Path(__file__).resolve().parent / "results" / "mcu_irb_int4.json"

INT4_VARIANTS = (("int8", ()), ("int4", ("expand", "project")),
                 ("int4_expand_only", ("expand",)), ("int4_project_only", ("project",)))
"""``--int4``: the fused block's 1×1 stages with int4 weights in each variant."""


def block_cases(name: str, spec: dict, rng: np.random.Generator, isa: str) -> list:
    """The fused case, then the unfused kernels of the same shapes (seeded data)."""
    from tests.support.kernel_irb_util import irb_case
    from tests.support.kernel_library_util import conv_case, elementwise_case, pointwise_case

    fused = irb_case(name, rng, checked=False, wide=0, isa=isa, **spec)
    h, w, cin, ce, cout = spec["h"], spec["w"], spec["cin"], spec["expanded"], spec["cout"]
    stride = spec["stride"]
    ho, wo = -(-h // stride), -(-w // stride)
    unfused = [
        pointwise_case(f"{name}/expand", rng, pixels=h * w, cin=cin, cout=ce, wide=0,
                       isa=isa),
        conv_case(f"{name}/depthwise", rng, h=h, w=w, cin=ce, cout=0, depthwise=True,
                  stride=stride, pads=(1, 1, 1, 1), wide=0),
        pointwise_case(f"{name}/project", rng, pixels=ho * wo, cin=ce, cout=cout, wide=0,
                       isa=isa),
    ]
    if spec.get("residual"):
        unfused.append(elementwise_case(f"{name}/add", rng, op="add", count=ho * wo * cout))
    return [fused, *unfused]


def measure(targets: list[str], work: Path, seed: int = 0) -> list[dict]:
    """One row per block and target."""
    from compiler.kernels import irb, isa_for_cpu
    from tests.support import kernel_library_util as driver

    rows = []
    for target in targets:
        rng = np.random.default_rng(seed)
        isa = isa_for_cpu(target)
        per_block = {name: block_cases(name, spec, rng, isa) for name, spec in BLOCKS.items()}
        cases = [c for block in per_block.values() for c in block]
        text = driver.run_cortex_m(cases, work / target, target, dump=False)
        got_isa, results = driver.parse_driver_output(text, cases)
        wrong = set(driver.check_results(cases, results))
        instr = {c.name: driver.ticks_to_instructions(r.ticks, target)
                 for c, r in zip(cases, results, strict=True)}
        for name, spec in BLOCKS.items():
            fused, *unfused = per_block[name]
            stride = spec["stride"]
            geometry = irb.IRBGeometry(spec["h"], spec["w"], spec["cin"], spec["expanded"],
                                       -(-spec["h"] // stride), -(-spec["w"] // stride),
                                       spec["cout"], spec["k"], stride, 1, 1, 1,
                                       bool(spec.get("residual")))
            unfused_instr = sum(instr[c.name] for c in unfused)
            rows.append({
                "block": name, "target": target, "isa": got_isa, "macs": fused.macs,
                "fused_instructions": round(instr[fused.name]),
                "fused_macs_per_instr": fused.macs / instr[fused.name],
                "unfused_instructions": round(unfused_instr),
                "unfused_macs_per_instr": fused.macs / unfused_instr,
                "unfused_per_kernel": {c.name.split("/")[1]: round(instr[c.name])
                                       for c in unfused},
                "fused_over_unfused_instructions": instr[fused.name] / unfused_instr,
                "scratch_bytes": irb.scratch_bytes(geometry),
                "expanded_tensor_bytes": geometry.expanded_bytes,
                "bit_exact_with_reference": not ({c.name for c in per_block[name]} & wrong),
            })
    return rows


def block_layers(spec: dict) -> list:
    """The block's expand, depthwise and project as `targets.cost.LayerSpec`s."""
    from targets.cost import LayerSpec

    h, w, cin, ce, cout, k = (spec[key] for key in ("h", "w", "cin", "expanded", "cout", "k"))
    out = (-(-h // spec["stride"]), -(-w // spec["stride"]))
    return [LayerSpec("conv", "expand", cin, ce, (h, w), (h, w)),
            LayerSpec("conv", "dw", ce, ce, (h, w), out, kernel=(k, k),
                      stride=(spec["stride"],) * 2, groups=ce),
            LayerSpec("conv", "project", ce, cout, out, out)]


def measure_int4(targets: list[str], work: Path, seed: int = 0) -> list[dict]:
    """One row per block and target: the fused block with int8 1x1 weights, int4 ones, and
    int4 in one stage only."""
    from compiler.kernels import isa_for_cpu
    from qanas.cost.int4_latency import int4_extra_cycles
    from targets.latency import coefficients_for
    from tests.support import kernel_library_util as driver
    from tests.support.kernel_irb_util import irb_case

    rows = []
    for target in targets:
        isa = isa_for_cpu(target)
        pairs = {name: [irb_case(f"{name}/{variant}", np.random.default_rng([seed, b]),
                                 checked=False, wide=0, isa=isa, int4=stages, **spec)
                        for variant, stages in INT4_VARIANTS]
                 for b, (name, spec) in enumerate(BLOCKS.items())}
        cases = [c for pair in pairs.values() for c in pair]
        text = driver.run_cortex_m(cases, work / f"{target}_int4", target, dump=False)
        got_isa, results = driver.parse_driver_output(text, cases)
        wrong = set(driver.check_results(cases, results))
        instr = {c.name: driver.ticks_to_instructions(r.ticks, target)
                 for c, r in zip(cases, results, strict=True)}
        coeffs = coefficients_for(target)
        for name, spec in BLOCKS.items():
            int8, int4, *one_stage = pairs[name]

            def weight_bytes(case) -> int:
                return sum(a.size for key, a in case.arrays.items() if "_weights" in key)

            predicted = int4_extra_cycles(block_layers(spec), ("expand", "project"), coeffs)
            measured = instr[int4.name] - instr[int8.name]
            rows.append({
                "block": name, "target": target, "isa": got_isa, "macs": int8.macs,
                "int8_instructions": round(instr[int8.name]),
                "int4_instructions": round(instr[int4.name]),
                "int4_over_int8_instructions": instr[int4.name] / instr[int8.name],
                **{f"{c.name.split('/')[1]}_instructions": round(instr[c.name])
                   for c in one_stage},
                "int8_weight_bytes": weight_bytes(int8), "int4_weight_bytes": weight_bytes(int4),
                "measured_change_instructions": round(measured),
                "predicted_change_cycles": round(predicted),
                "predicted_change_over_measured": predicted / measured if measured else None,
                "latency_model": coeffs.name,
                "bit_exact_with_reference": not ({c.name for c in pairs[name]} & wrong),
            })
    return rows


def _print_int4(rows: list[dict]) -> None:
    print(f"{'block':<9} {'target':<11} {'isa':<4} {'int8 instr':>10} {'int4 instr':>10} "
          f"{'ratio':>6} {'bytes int8':>10} {'int4':>6} {'change':>8} {'predicted':>9} exact")
    for r in rows:
        print(f"{r['block']:<9} {r['target']:<11} {r['isa']:<4} {r['int8_instructions']:>10} "
              f"{r['int4_instructions']:>10} {r['int4_over_int8_instructions']:>5.3f}x "
              f"{r['int8_weight_bytes']:>10} {r['int4_weight_bytes']:>6} "
              f"{r['measured_change_instructions']:>+8} {r['predicted_change_cycles']:>+9} "
              f"{r['bit_exact_with_reference']}")


def main(argv: list[str] | None = None) -> int:
    """Prints the table (or JSON) and writes the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", nargs="+", default=["cortex-m4", "cortex-m55"])
    parser.add_argument("--out", type=Path,
                        help=f"JSON path (default {DEFAULT_OUT.name}, --int4 "
                             f"{DEFAULT_OUT_INT4.name} in benchmarks/results)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--int4", action="store_true",
                        help="int8 vs int4 expand / project weights in the fused kernel")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    from benchmarks.mcu_kernels import _provenance

    with tempfile.TemporaryDirectory(prefix="qanas-mcu-irb-") as tmp:
        rows = (measure_int4 if args.int4 else measure)(args.targets, Path(tmp), args.seed)
    provenance = _provenance(args.targets, args.seed)
    provenance["command"] = ("benchmarks/mcu_irb.py --targets " + " ".join(args.targets)
                             + (" --int4" if args.int4 else ""))
    report = {"provenance": provenance, "rows": rows}
    out = args.out or (DEFAULT_OUT_INT4 if args.int4 else DEFAULT_OUT)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    if args.json:
        print(json.dumps(report, indent=2))
    elif args.int4:
        _print_int4(rows)
        print(f"(written to {out})")
    else:
        print(f"{'block':<9} {'target':<11} {'isa':<4} {'MACs':>8} {'fused':>9} {'MAC/i':>6} "
              f"{'unfused':>9} {'MAC/i':>6} {'ratio':>6} {'scratch':>8} {'E bytes':>8} exact")
        for r in rows:
            print(f"{r['block']:<9} {r['target']:<11} {r['isa']:<4} {r['macs']:>8} "
                  f"{r['fused_instructions']:>9} {r['fused_macs_per_instr']:>6.3f} "
                  f"{r['unfused_instructions']:>9} {r['unfused_macs_per_instr']:>6.3f} "
                  f"{r['fused_over_unfused_instructions']:>5.3f}x {r['scratch_bytes']:>8} "
                  f"{r['expanded_tensor_bytes']:>8} {r['bit_exact_with_reference']}")
        print(f"(written to {out})")
    return 0 if all(r["bit_exact_with_reference"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
