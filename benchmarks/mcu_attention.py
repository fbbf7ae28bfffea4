"""Attention's steps per layer on QEMU (-icount): an efficient-topformer subnet at 64×128.

The subnet (``--which``, default ``seed``: TopFormer-T) is exported at the demo's 64×128
(`tests.support.firmware_util.export_subnet`: seeded weights and calibration), compiled in
the default mode and run once per target with ``qanas bench --per-layer`` (QEMU
``-icount shift=0``: deterministic instruction counts; outputs checked against the host
build of the same C). Recorded per attention step: its kind, the kernel, what runs it (a
library function or a TVM kernel) and its retired instructions; per kind the sum; and
the whole model's instructions. Kinds: ``matmul`` (the int8 products Q·Kᵀ and
softmax·V), ``softmax``, and ``head split/join`` (the TVM kernels that transpose and
reshape the heads: every kernel named with both a transpose and a reshape).

With ``--base REV`` the same command also runs on the compiler and runtime of git
revision REV (`git archive` into a temporary directory, this interpreter), on the same
ONNX file and input: a before/after comparison of one change.

    .venv/bin/python benchmarks/mcu_attention.py --base main \\
        --out benchmarks/results/mcu_attention.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

BENCH = ("import sys; from qanas.cli.main import main; sys.argv[0] = 'qanas'; "
         "sys.exit(main())")
"""The ``qanas`` CLI of whichever checkout is first on ``PYTHONPATH``."""


def kind(kernel: str, implementation: str) -> str | None:
    """The attention kind of a per-layer step, or None for any other step."""
    if "matmul" in implementation:
        return "matmul"
    if "softmax" in implementation:
        return "softmax"
    if "transpose" in kernel and "reshape" in kernel:
        return "head split/join"
    return None


def bench(repo: Path, onnx_path: Path, target: str, work: Path) -> dict:
    """`qanas bench --per-layer` of `onnx_path` on `target` with the code of `repo`."""
    env = {**os.environ, "PYTHONPATH": str(repo), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", BENCH, "bench", str(onnx_path), "--json",
                           "--target", target, "--per-layer", "--repeats", "1",
                           "--warmup", "0", "--out", str(work), "--force"],
                          cwd=repo, env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"qanas bench failed in {repo}:\n{proc.stderr[-4000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    steps = [{"kind": k, "kernel": layer["kernel"], "implementation": layer["implementation"],
              "instructions": layer["value"]}
             for layer in result["layers"]
             if (k := kind(layer["kernel"], layer["implementation"])) is not None]
    totals: dict[str, float] = {}
    for step in steps:
        totals[step["kind"]] = totals.get(step["kind"], 0.0) + step["instructions"]
    return {"instructions": result["latency"]["median"],
            "bit_exact_with_host": result["outputs_match"],
            "arena_bytes": result["sram_bytes"]["arena"],
            "attention_totals": totals, "attention_steps": steps}


def checkout(rev: str, into: Path) -> tuple[Path, str]:
    """The tree of git revision `rev` unpacked into `into`; (its path, its commit)."""
    commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", rev], check=True,
                            capture_output=True, text=True).stdout.strip()
    archive = into / "tree.tar"
    subprocess.run(["git", "-C", str(REPO), "archive", "-o", str(archive), commit], check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into / "tree", filter="data")
    return into / "tree", commit


def main(argv: list[str] | None = None) -> int:
    from tests.support.firmware_util import export_subnet

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--which", default="seed", help="subnet: min, seed, max or a config")
    parser.add_argument("--targets", nargs="+", default=["cortex-m55"])
    parser.add_argument("--base", help="also measure git revision BASE (before/after)")
    parser.add_argument("--out", type=Path, help="write the results as JSON")
    args = parser.parse_args(argv)
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], check=True,
                          capture_output=True, text=True).stdout.strip()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        onnx_path = export_subnet("efficient-topformer", args.which, tmp / "subnet.onnx")
        trees = [("after", REPO, head)]
        if args.base:
            tree, commit = checkout(args.base, tmp)
            trees.insert(0, ("before", tree, commit))
        for target in args.targets:
            for label, tree, commit in trees:
                r = bench(tree, onnx_path, target, tmp / f"{label}-{target}")
                runs.append({"label": label, "commit": commit, "target": target, **r})
                totals = ", ".join(f"{k} {v:,.0f}" for k, v in r["attention_totals"].items())
                print(f"{target} {label} ({commit[:7]}): {r['instructions']:,.0f} "
                      f"instructions, bit-exact {r['bit_exact_with_host']}; {totals}")
    record = {"command": "benchmarks/mcu_attention.py " + " ".join(argv or sys.argv[1:]),
              "space": "efficient-topformer", "subnet": args.which, "size": [64, 128],
              "runs": runs}
    if args.out:
        args.out.write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
