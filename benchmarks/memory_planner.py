"""Memory planners on random MobileNet-like segmentation nets: arena/LB and time per plan.

Each net is an int8 inverted-residual encoder (expand 1x1 -> depthwise -> project
1x1, with residual adds), skip tensors kept alive from the encoder to a small
upsampling decoder, and per-kernel scratch buffers (live at one step), as the AOT
plan of an extracted subnet would give. Run:

    .venv/bin/python benchmarks/memory_planner.py            # 200 nets, 50-300 buffers
    .venv/bin/python benchmarks/memory_planner.py --nets 20 --seed 1

For each planner it prints the mean and worst arena/LB, the share of nets planned
at exactly LB, the arena relative to no reuse, and the median milliseconds per plan.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from compiler.memory import (  # noqa: E402
    PLANNERS,
    BufferLifetime,
    GreedyMultiOrderPlanner,
    get_planner,
)


class _Net:
    """Builds the buffer lifetimes of an AOT plan, one kernel call at a time."""

    def __init__(self, rng: np.random.Generator):
        self.rng = rng
        self.step = 0
        self.tensors: dict[str, list[int]] = {}  # name -> [size, first, last]
        self.output = ""

    def tensor(self, size: int) -> str:
        name = f"t{len(self.tensors)}"
        self.tensors[name] = [int(size), self.step, self.step]
        return name

    def kernel(self, inputs: list[str], out_size: int, scratch: int = 0) -> str:
        for name in inputs:
            self.tensors[name][2] = self.step
        out = self.tensor(out_size)
        if scratch:
            self.tensors[f"workspace_{self.step}"] = [int(scratch), self.step, self.step]
        self.step += 1
        return out

    def buffers(self) -> list[BufferLifetime]:
        last_step = self.step - 1
        return [
            BufferLifetime(n, s, f, max(e, f) if n != self.output else last_step)
            for n, (s, f, e) in self.tensors.items()
        ]


def mobilenet_like(rng: np.random.Generator, n_blocks: int) -> list[BufferLifetime]:
    """Buffer lifetimes of a random MobileNetV2-style encoder-decoder with `n_blocks` blocks."""
    net = _Net(rng)
    res = int(rng.choice([96, 128, 160, 192]))
    h = res // 2
    ch = int(rng.choice([8, 16, 24]))
    x = net.tensor(res * res * 3)
    x = net.kernel([x], h * h * ch, scratch=int(rng.integers(0, 2)) * 27 * ch)
    skips = []
    stride2_at = set(rng.choice(np.arange(1, n_blocks), size=min(4, n_blocks - 1), replace=False))
    for block in range(n_blocks):
        expand = int(rng.choice([1, 3, 4, 6]))
        stride = 2 if block in stride2_at else 1
        cout = ch * 2 if stride == 2 else (ch if rng.random() < 0.7 else ch + 8)
        if stride == 2:
            skips.append((x, h, ch))
        mid = x if expand == 1 else net.kernel([x], h * h * ch * expand)
        h2 = max(h // stride, 1)
        mid = net.kernel([mid], h2 * h2 * ch * expand, scratch=int(rng.integers(0, 2)) * 9 * 64)
        if stride == 1 and cout == ch:
            if rng.random() < 0.5:  # add fused into the projection
                x = net.kernel([mid, x], h2 * h2 * cout)
            else:
                y = net.kernel([mid], h2 * h2 * cout)
                x = net.kernel([y, x], h2 * h2 * cout)
        else:
            x = net.kernel([mid], h2 * h2 * cout)
        h, ch = h2, cout
    for skip, hs, _ in reversed(skips[-2:]):  # decoder: upsample, concat with skip, conv
        up = net.kernel([x], hs * hs * ch)
        x = net.kernel([up, skip], hs * hs * 32, scratch=int(rng.integers(0, 2)) * 1024)
        ch = 32
    net.output = net.kernel([x], h * h * 4 if not skips else skips[0][1] ** 2 * 4)
    return net.buffers()


def main(argv: list[str] | None = None) -> None:
    """Runs the benchmark and prints one line per planner."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nets", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=5, help="timing repeats per net")
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    nets = [mobilenet_like(rng, int(rng.integers(12, 80))) for _ in range(args.nets)]
    counts = [len(b) for b in nets]
    print(
        f"{len(nets)} nets, {min(counts)}-{max(counts)} buffers (median {int(np.median(counts))})"
    )

    baseline = [get_planner("no-reuse").plan(b).arena_bytes for b in nets]
    header = f"{'planner':26s} {'mean arena/LB':>13s} {'worst':>7s} {'at LB':>6s} {'vs no-reuse':>11s} {'ms/plan':>8s} {'ms@200+':>8s}"
    print(header)
    planners = [(name, get_planner(name)) for name in PLANNERS.names()]
    planners.insert(1, ("greedy, no LB search", GreedyMultiOrderPlanner(search_budget=0)))
    for name, planner in planners:
        ratios, saved, times, times_big = [], [], [], []
        for bufs, base in zip(nets, baseline, strict=True):
            plan = planner.plan(bufs)
            plan.validate(bufs)
            ratios.append(plan.ratio)
            saved.append(plan.arena_bytes / base)
            best = min(_timed(planner, bufs) for _ in range(args.repeats))
            times.append(best)
            if len(bufs) >= 200:
                times_big.append(best)
        at_lb = sum(r <= 1.0 for r in ratios) / len(ratios)
        big = f"{statistics.median(times_big):8.2f}" if times_big else f"{'-':>8s}"
        print(
            f"{name:26s} {statistics.mean(ratios):13.4f} {max(ratios):7.3f} {at_lb:6.0%} "
            f"{statistics.mean(saved):11.3f} {statistics.median(times):8.2f} {big}"
        )


def _timed(planner, buffers) -> float:
    start = time.perf_counter()
    planner.plan(buffers)
    return (time.perf_counter() - start) * 1e3


if __name__ == "__main__":
    main()
