"""Build a per-block latency table and validate it on held-out subnets (measured, not modelled).

Default: the committed table of the demo setting, squeezenas-small on cortex-m7 under QEMU
(instruction counts), 64x128 input, 6 classes (the synthetic dataset's), all 13 options:

    python benchmarks/latency_lut.py --n 20

which runs, and can be run by hand:

    qanas lut build --space squeezenas-small --target cortex-m7 --image-size 64 128 \\
        --num-classes 6 --references seed,min,max \\
        --out targets/luts/squeezenas-small_cortex-m7_64x128_c6.json --resume --json
    qanas lut validate --lut targets/luts/squeezenas-small_cortex-m7_64x128_c6.json \\
        --n 20 --seed 1 --json

Measured (2026-12-02, kernel generation 4, 2 shared CPU cores; see the table's `protocol`
and `squeezenas-small_cortex-m7_64x128_c6.validation.json` for every figure):
  build: 125 entries (10 superblock shapes x 13 options, minus 5 identity skips) + the
  per-model overhead (200 instructions) + 3 references end to end, 1020 s; fixed part
  8.73 M instructions;
  validation (`--n 10`): 10 held-out subnets, MAPE 0.31 %, 100 % within +-10 % (worst
  0.59 %), Kendall tau 0.956.

Prints the validation summary (MAPE, share within ±10 %, Kendall τ). The build resumes
from an existing --out, so an interrupted run continues where it stopped.
"""

from __future__ import annotations

import argparse
import json
import sys

from qanas.cli.main import main as qanas
from qanas.cost.lut.committed import lut_dir, lut_filename, validation_path


def main(argv: list[str] | None = None) -> int:
    """Builds (or completes) the table, validates it and prints the summary on stderr."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="squeezenas-small")
    parser.add_argument("--target", default="cortex-m7")
    parser.add_argument("--image-size", type=int, nargs=2, default=(64, 128))
    parser.add_argument("--num-classes", type=int, default=6)
    parser.add_argument("--options", help="labels to measure (default: all)")
    parser.add_argument("--n", type=int, default=20, help="held-out subnets")
    parser.add_argument("--seed", type=int, default=1, help="seed of the held-out draw")
    parser.add_argument("--out", help="table file (default: the committed one)")
    parser.add_argument("--work-dir", help="compiled models (default: a temp dir)")
    args = parser.parse_args(argv)
    size = tuple(args.image_size)
    out = args.out or str(lut_dir() / lut_filename(args.space, args.target, size,
                                                    args.num_classes))
    work = ["--work-dir", args.work_dir] if args.work_dir else []
    options = ["--options", args.options] if args.options else []
    code = qanas(["lut", "build", "--space", args.space, "--target", args.target,
                  "--image-size", str(size[0]), str(size[1]), "--num-classes",
                  str(args.num_classes), *options, "--out", out, "--resume", *work, "--json"])
    if code:
        return code
    code = qanas(["lut", "validate", "--lut", out, "--n", str(args.n), "--seed",
                  str(args.seed), *work, "--json"])
    if code == 0:
        report = json.loads(validation_path(out).read_text())
        print(json.dumps({k: report[k] for k in ("n", "mape", "within_10", "max_ape",
                                                  "kendall_tau", "unit")}), file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
