"""Instructions of the int8 resize against its multiplier's trailing zeros (QEMU -icount).

The resize's fast requantization (`qk_resize.c`) is taken when no rounding tie can occur,
which depends on how many trailing zeros the calibrated multiplier has. This runs the two
resizes of squeezenas-small's min subnet at 64x128 (the decoder's 2x bilinear 4x8x128 ->
8x16x128, NHWC, shift -4; the final 8x bilinear 8x16x6 -> 64x128, NCHW output, shift -7),
each with multipliers of 0, s = -shift - 1 and 11 trailing zeros and with a power of two
(2^30, where ties do occur), through the bare-metal kernel driver
(tests/support/kernel_library_util.py: SysTick around the call, outputs checked bit-exact
against the NumPy reference), on cortex-m7:

    .venv/bin/python benchmarks/mcu_resize.py --out benchmarks/results/mcu_resize.json

Measured: with the kernels of git d550722 (`mcu_resize_before.json`) a multiplier of s or
more trailing zeros took the exact scalar formula, the decoder's resize 2.5x and the final
one 2.6x slower; now only the power of two does. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHAPES = {
    "decoder_2x": dict(h=4, w=8, c=128, out_hw=(8, 16), shift=-4),
    "final_8x_nchw": dict(h=8, w=16, c=6, out_hw=(64, 128), nchw=True, shift=-7),
}
"""The min subnet's resizes at 64x128 and the shifts its calibration gives them."""


def multiplier(zeros: int, rng: np.random.Generator) -> int:
    """A Q31 multiplier in [2^30, 2^31) with exactly `zeros` trailing zeros (30: 2^30)."""
    if zeros >= 30:
        return 1 << 30
    odd = int(rng.integers(1 << (29 - zeros), 1 << (30 - zeros))) * 2 + 1
    return odd << zeros


def main(argv: list[str] | None = None) -> int:
    """Runs every (shape, trailing zeros) case once; prints instructions per case."""
    from qanas.utils.io import atomic_write_json, source_commit
    from tests.support.kernel_library_util import (
        check_results,
        parse_driver_output,
        run_cortex_m,
        ticks_to_instructions,
    )
    from tests.support.kernel_resize_util import resize_case

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="cortex-m7")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    source = source_commit()  # the kernels measured
    cases, rows = [], []
    for name, spec in SHAPES.items():
        spec = dict(spec)
        shift = spec.pop("shift")
        for zeros in (0, -shift - 1, 11, 30):
            m = multiplier(zeros, rng)
            cases.append(resize_case(f"{name}_v2_{zeros}", rng, zx=0, requant=(m, shift),
                                     **spec))
            rows.append({"resize": name, "multiplier": m, "shift": shift,
                         "trailing_zeros": zeros})
    with tempfile.TemporaryDirectory() as work:
        text = run_cortex_m(cases, Path(work), args.target)
    _, results = parse_driver_output(text, cases)
    errors = check_results(cases, results)
    if errors:
        raise SystemExit(f"not bit-exact: {errors}")
    for row, result in zip(rows, results, strict=True):
        row["instructions"] = ticks_to_instructions(result.ticks, args.target)
    out = {"target": args.target, "unit": "instructions", "commit": source["commit"],
           "kernels_modified": source["modified"],
           "cases": rows, "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])])}
    if args.out:
        atomic_write_json(args.out, out)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
