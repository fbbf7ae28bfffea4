"""Build a per-block latency table and validate it on held-out subnets (measured, not modelled).

Example (squeezenas-small on Cortex-M4 under QEMU at 64x64, 4 options: ~3 min to build,
~2 min per held-out subnet on 2 busy cores):

    python benchmarks/latency_lut.py --space squeezenas-small --target cortex-m4 \\
        --image-size 64 64 --options k3e1g1,k3e6g1,k5e3g1,skip --n 8 --out luts/sq-m4-64.json

Prints the validation JSON (MAPE, share within ±10 %, Kendall τ, per-subnet rows). The build
resumes from an existing --out, so an interrupted run continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import sys

from qanas.cli.main import main as qanas


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="squeezenas-small")
    parser.add_argument("--target", default="cortex-m4")
    parser.add_argument("--image-size", type=int, nargs=2, default=(64, 64))
    parser.add_argument("--options", default="k3e1g1,k3e6g1,k5e3g1,skip")
    parser.add_argument("--n", type=int, default=8, help="held-out subnets")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", required=True, help="table file")
    parser.add_argument("--work-dir", help="compiled models (default: a temp dir)")
    args = parser.parse_args(argv)
    work = ["--work-dir", args.work_dir] if args.work_dir else []
    h, w = (str(v) for v in args.image_size)
    code = qanas(["lut", "build", "--space", args.space, "--target", args.target,
                  "--image-size", h, w, "--options", args.options, "--out", args.out,
                  "--resume", *work, "--json"])
    if code:
        return code
    code = qanas(["lut", "validate", "--lut", args.out, "--n", str(args.n), "--seed",
                  str(args.seed), *work, "--json"])
    if code == 0:
        with open(args.out + ".validation.json") as f:
            report = json.load(f)
        print(json.dumps({k: report[k] for k in ("n", "mape", "within_10", "max_ape",
                                                  "kendall_tau", "unit")}), file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
