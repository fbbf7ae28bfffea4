"""How much a block's QEMU instruction count depends on its input data (why LUT entries are
measured in context).

Compiles one squeezenas-small candidate at its superblock's input shape, calibrated on the
activations that reach it in the seed network (as `qanas lut build` does), then runs the same
firmware on an all-zero input, on uniform random int8 and on its in-context activation:

    python benchmarks/lut_data_dependence.py --target cortex-m7 --block 1 --label k5e6g1

Measured (2026-11-21, cortex-m7, 64x128, block 1 = 16x16x32-16-s1, k5e6g1): zeros
23,660,760; uniform random int8 24,007,040; in context 23,982,160 instructions (= the
committed table's entry): a 1.5 % spread from the data alone. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch


def main(argv: list[str] | None = None) -> int:
    """Measures one block on three inputs and prints the instruction counts as JSON."""
    from qanas.cost.lut.measure import (
        CompiledModelMeasurer,
        context_inputs,
        quantize_sample,
        safe_name,
    )
    from qanas.cost.lut.table import block_contexts, seeded_supernet
    from qanas.space import get_space
    from runtime.runners.base import read_io
    from targets import get_target

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default="squeezenas-small")
    parser.add_argument("--target", default="cortex-m7")
    parser.add_argument("--image-size", type=int, nargs=2, default=(64, 128))
    parser.add_argument("--num-classes", type=int, default=6)
    parser.add_argument("--block", type=int, default=1, help="superblock index")
    parser.add_argument("--label", default="k5e6g1", help="candidate label")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work-dir", help="compiled model (default: a temp dir)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    space, target = get_space(args.space), get_target(args.target)
    size = tuple(args.image_size)
    net = seeded_supernet(space, args.num_classes, args.seed)
    _, per_block = context_inputs(net, space.seed_config(), size, args.seed)
    ctx = block_contexts(space, size)[args.block]
    key = ctx.signature(args.label)
    module = net.choice_blocks[args.block].candidates[space.decisions[0].options.index(args.label)]
    measurer = CompiledModelMeasurer(target, Path(args.work_dir or tempfile.mkdtemp()))
    in_context = measurer.measure(module, per_block[args.block], key).value
    project = measurer.work_dir / safe_name(key) / "project"
    spec = read_io(project)[0][0]
    rng = np.random.default_rng(args.seed)
    inputs = {"zeros": np.zeros(spec.shape, np.int8),
              "uniform_int8": rng.integers(-128, 128, spec.shape).astype(np.int8),
              "in_context": quantize_sample(per_block[args.block].sample, spec)}
    counts = {name: measurer.runner.run(project, {spec.name: a}).protocol["latency"][0]
              for name, a in inputs.items()}
    print(json.dumps({"target": target.name, "entry": key, "unit": measurer.unit,
                      "measured_in_context": in_context, **counts}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
