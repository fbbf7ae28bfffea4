"""Int4-weight convolutions against the int8 kernels on Cortex-M: MAC per instruction.

Squeezenas-small-like layers at 16×32 NHWC: a pointwise expand (16 → 96) and project
(96 → 24), a 3×3 conv (32 → 32) and a 3×3 stride-2 stem-like conv (16 → 32). Each runs
once as ``qanas_pointwise_conv_s4`` / ``qanas_conv2d_s4`` (weights packed two per byte)
and once as the int8 kernel on the same integer weights stored a byte each, in the layout
the target's int8 path reads (OHWI; Helium's interleaved blocks on cortex-m55), with the
same output; one bare-metal driver per target (tests/support/kernel_library_util.py)
brackets every call by SysTick reads under QEMU ``-icount shift=0`` and every output is
checked bit-exact against the NumPy reference. Printed: MAC per instruction of both,
their ratio (the goal of issue 16: int4 ≥ 0.8× int8) and the weight bytes of both, one
row per layer and target (``isa``: the path the build ran, ``dsp`` or ``mve``). JSON to
benchmarks/results/mcu_int4.json.

Usage: .venv/bin/python benchmarks/mcu_int4.py [--targets cortex-m4 cortex-m55] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LAYERS = {  # name → s4_conv_case arguments
    "pw_expand_16_96": dict(h=16, w=32, cin=16, cout=96, k=1, pads=(0, 0, 0, 0),
                            pointwise=True),
    "pw_project_96_24": dict(h=16, w=32, cin=96, cout=24, k=1, pads=(0, 0, 0, 0),
                             pointwise=True),
    "k3s1_32_32": dict(h=16, w=32, cin=32, cout=32),
    "k3s2_16_32": dict(h=16, w=32, cin=16, cout=32, stride=2, pads=(1, 1, 0, 0)),
}

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "mcu_int4.json"


def measure(targets: list[str], work: Path, seed: int = 0) -> list[dict]:
    """One row per layer and target."""
    from compiler.kernels import isa_for_cpu
    from tests.support import kernel_library_util as driver
    from tests.support.kernel_s4_util import int8_twin, s4_conv_case

    rows = []
    for target in targets:
        rng = np.random.default_rng(seed)
        int4 = [s4_conv_case(name, rng, **spec) for name, spec in LAYERS.items()]
        cases = [*int4, *[int8_twin(c, isa_for_cpu(target)) for c in int4]]
        text = driver.run_cortex_m(cases, work / target, target, dump=False)
        got_isa, results = driver.parse_driver_output(text, cases)
        wrong = set(driver.check_results(cases, results))
        instr = {c.name: driver.ticks_to_instructions(r.ticks, target)
                 for c, r in zip(cases, results, strict=True)}
        for case in int4:
            twin = f"{case.name}_int8"
            s4 = case.macs / instr[case.name]
            s8 = case.macs / instr[twin]
            rows.append({
                "layer": case.name, "target": target, "isa": got_isa, "macs": case.macs,
                "int4_instructions": round(instr[case.name]),
                "int8_instructions": round(instr[twin]),
                "int4_macs_per_instr": s4, "int8_macs_per_instr": s8,
                "int4_over_int8_macs_per_instr": s4 / s8,
                "int4_weight_bytes": int(case.arrays["weights"].size),
                "int8_weight_bytes": case.macs // case.expected.size * case.arrays["bias"].size,
                "bit_exact_with_reference": not ({case.name, twin} & wrong),
            })
    return rows


def _table(rows: list[dict]) -> str:
    head = (f"{'layer':<17} {'target':<10} {'isa':<4} {'MACs':>8} {'int4 MAC/i':>10} "
            f"{'int8 MAC/i':>10} {'ratio':>6} {'w4 B':>6} {'w8 B':>6} exact")
    return "\n".join([head, *(
        f"{r['layer']:<17} {r['target']:<10} {r['isa']:<4} {r['macs']:>8} "
        f"{r['int4_macs_per_instr']:>10.3f} {r['int8_macs_per_instr']:>10.3f} "
        f"{r['int4_over_int8_macs_per_instr']:>6.2f} {r['int4_weight_bytes']:>6} "
        f"{r['int8_weight_bytes']:>6} {r['bit_exact_with_reference']}" for r in rows)])


def main(argv: list[str] | None = None) -> int:
    """Prints the table and writes the JSON; exit 1 when an output is not bit-exact."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", nargs="+", default=["cortex-m4", "cortex-m55"])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    from benchmarks.mcu_kernels import _provenance

    with tempfile.TemporaryDirectory(prefix="qanas-mcu-int4-") as tmp:
        rows = measure(args.targets, Path(tmp), args.seed)
    report = {"provenance": {**_provenance(args.targets, args.seed),
                             "command": "benchmarks/mcu_int4.py --targets "
                                        + " ".join(args.targets)},
              "rows": rows}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(_table(rows))
    return 0 if all(r["bit_exact_with_reference"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
