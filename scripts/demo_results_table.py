"""Prints the README's results table from a `qanas demo` run (default runs/demo/results.json).

Usage:
    .venv/bin/python scripts/demo_results_table.py [runs/demo/results.json]

Every figure comes from the run's results.json; nothing here is typed by hand.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def _m(v: float) -> str:
    return f"{v / 1e6:.1f} M"


def table(results: dict) -> str:
    """The markdown table of one demo run."""
    r = results
    stages = {s["stage"]: s["seconds"] for s in r["stages"]}
    train_s = sum(v for k, v in stages.items() if k.startswith("train"))
    search, lat, chosen = r["search"], r["lut_validation"], r["chosen"]
    fid, qat, npu = r["fidelity"], r.get("qat") or {}, r.get("npu")
    scored = [e["miou"] for e in search["evaluated"] if e["miou"] is not None]
    fw = {row["target"]: row for row in r["firmware"] if row.get("fits")}
    cores = r["protocol"]["host"]["cores"]
    rows = [
        ("majority-class baseline mIoU", f"{r['training']['baseline_miou']:.3f}"),
        ("supernet", f"{r['space']}, {r['training']['epochs']} float epochs + "
                     f"{r['training']['qat_steps']} QAT steps ({train_s:.0f} s)"),
        (f"NSGA-II for {search['target']} ({len(search['evaluated'])} subnets, "
         f"{stages.get('NSGA-II search', 0):.0f} s)",
         f"int8 mIoU {min(scored):.3f} … {max(scored):.3f}; front of {len(search['front'])}"),
        ("latency table vs QEMU", "not checked (--latency-subnets 0)") if lat is None else
        (f"latency table vs QEMU ({lat['n']} front subnets)",
         f"MAPE {lat['mape']:.2f} %, {100 * lat['within_10']:.0f} % within ±10 % "
         f"({lat['source']}, {lat['measured_unit']})"),
        ("chosen subnet (knee of the front)",
         f"{chosen['macs'] / 1e6:.1f} MMACs, {chosen['kernels']} kernels, predicted "
         f"{_m(chosen['latency']['value'])} {chosen['latency']['unit']}"),
        ("int8 mIoU: search → after QAT fine-tune",
         f"{qat.get('miou_int8_before', chosen['miou_int8_search']):.3f} → "
         f"{chosen['miou_int8']:.3f} ({qat.get('steps', 0)} steps; float "
         f"{chosen['miou_fp32']:.3f})"),
        ("arena / lower bound; weights",
         f"{chosen['arena_bytes']:,} / {chosen['lower_bound_bytes']:,} bytes; "
         f"{chosen['weights_bytes']:,} bytes"),
        ("host C vs NumPy int8 reference",
         f"{100 * fid['bit_exact_fraction_integer_reference']:.1f} % bit-exact"),
        ("host C vs onnxruntime (float32 QDQ path)",
         f"{100 * fid['bit_exact_fraction']:.1f} % bit-exact, max {fid['max_lsb_diff']} LSB "
         "(half-way ties; see `docs/int8-arithmetic.md`)"),
        ("deployed integer mIoU vs fake-quant mIoU",
         f"{fid['miou_deployed_int8']:.3f} vs {fid['miou_fake_quant']:.3f} "
         f"({fid['images']} images)"),
        ("firmware, instructions per inference (QEMU)",
         ", ".join(f"{t} {_m(row['latency'][0])}" for t, row in fw.items())
         + "; outputs equal to the host build: "
         + ("yes" if all(row["outputs_match_host"] for row in fw.values()) else "NO")),
    ]
    if npu:
        rows.append((f"{npu['target']} (Vela estimate)",
                     f"{npu['cycles']:,} cycles ({1e3 * npu['latency_s']:.2f} ms), SRAM "
                     f"{npu['sram_bytes']:,} B, {len(npu['cpu_fallback'])} op(s) on the CPU"))
    head = (f"One `make demo` run on a {cores}-core x86_64 machine ({r['seconds']:.0f} s in "
            f"all); regenerate with `scripts/demo_results_table.py`:\n\n")
    body = "\n".join(f"| {a} | {b} |" for a, b in rows)
    return head + "| what | measured |\n| --- | --- |\n" + body


def main(argv: list[str]) -> int:
    """Prints the table of the results file named in `argv` (default runs/demo)."""
    path = Path(argv[0] if argv else os.path.join("runs", "demo", "results.json"))
    print(table(json.loads(path.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
