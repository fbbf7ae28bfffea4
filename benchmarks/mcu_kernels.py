"""MACs per instruction of int8 conv kernels on Cortex-M (QEMU ``-icount shift=0``).

Two sets of kernels:

* **The kernel library** (`runtime/c/kernels`, docs/kernels.md), the default: the four
  shapes of issue 12 (1×1 pointwise 24×24×64→64, 3×3 conv 24×24×32→32, 3×3 depthwise
  48×48×64, 3×3 stride-2 stem 96×96×3→16, NHWC, padding 1 where k = 3), and the small
  maps of squeezenas-small's seed subnet at 64×128 (depthwise 3×3 on 4×8×96, 3×3
  dilation 2 on 8×16×96, 5×5 on 8×16×144, 3×3 stride 2 on 16×32×96, "same" padding;
  pointwise 4×8×96→16 and 8×16×16→96; no CMSIS-NN anchor: null) are run by a
  bare-metal driver (tests/support/kernel_library_util.py) on cortex-m4 / cortex-m7 (DSP path)
  and cortex-m55 (Helium path); each kernel call is bracketed by SysTick reads, so its
  instruction count excludes everything else. Outputs are checked bit-exact against the
  NumPy integer reference (FNV-1a hash of every output byte). Printed beside the
  CMSIS-NN figures of issue 12 (``arm_convolve_wrapper_s8`` /
  ``arm_depthwise_conv_wrapper_s8``, arm-none-eabi-gcc 12.2 -O2, same QEMU machines and
  counting; none were published for cortex-m7) and our ratio to them; the JSON is written
  to benchmarks/results/mcu_kernels.json (``--out``).
* **The TVM kernels** (``--tvm``): an int8 Brevitas model per conv (16 channels) compiled
  by `compiler.driver.compile_model`, built into firmware with per-kernel timing. Measured
  (QEMU 7.2, arm-none-eabi-gcc 12.2 -O2; unscheduled → default TIR schedule):

    conv        cortex-m4          cortex-m55
    conv1x1     0.0629 → 0.1025    0.0761 → 0.1191
    conv3x3     0.0648 → 0.0654    0.0576 → 0.0656
    dw3x3       0.0368 → 0.0488    0.0386 → 0.0498
    stem3x3s2   0.0520 → 0.0679    0.0463 → 0.0685

The physical peaks: 2 MAC/instr on M4/M7 (SMLAD: two 16×16 MACs), 16 on M55 (VMLADAV.S8
over a 128-bit vector).

Usage: .venv/bin/python benchmarks/mcu_kernels.py [--targets cortex-m4 cortex-m7 cortex-m55]
       [--out benchmarks/results/mcu_kernels.json] [--json]
       .venv/bin/python benchmarks/mcu_kernels.py --tvm [--no-schedule] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PEAK_MACS_PER_INSTR = {"cortex-m4": 2.0, "cortex-m7": 2.0, "cortex-m55": 16.0}

LIBRARY_SHAPES = {  # issue 12's shapes: name → (description, case factory arguments)
    "pointwise": ("1x1 pointwise 24x24x64->64",
                  dict(kind="pointwise", pixels=24 * 24, cin=64, cout=64)),
    "conv3x3": ("3x3 conv 24x24x32->32", dict(kind="conv", h=24, w=24, cin=32, cout=32)),
    "dw3x3": ("3x3 depthwise 48x48x64", dict(kind="depthwise", h=48, w=48, cin=64)),
    "stem3x3s2": ("3x3 s2 stem 96x96x3->16",
                  dict(kind="conv", h=96, w=96, cin=3, cout=16, stride=2)),
    # whole-model shapes (squeezenas-small seed at 64x128): small maps, where most
    # depthwise windows touch the padding; no CMSIS-NN anchor
    "dw3x3_4x8": ("3x3 depthwise 4x8x96", dict(kind="depthwise", h=4, w=8, cin=96)),
    "dw3x3d2_8x16": ("3x3 d2 depthwise 8x16x96",
                     dict(kind="depthwise", h=8, w=16, cin=96, dilation=2, pads=(2, 2, 2, 2))),
    "dw5x5_8x16": ("5x5 depthwise 8x16x144",
                   dict(kind="depthwise", h=8, w=16, cin=144, k=5, pads=(2, 2, 2, 2))),
    "dw3x3s2_16x32": ("3x3 s2 depthwise 16x32x96",
                      dict(kind="depthwise", h=16, w=32, cin=96, stride=2)),
    "pointwise_4x8": ("1x1 pointwise 4x8x96->16",
                      dict(kind="pointwise", pixels=4 * 8, cin=96, cout=16)),
    "pointwise_8x16": ("1x1 pointwise 8x16x16->96",
                       dict(kind="pointwise", pixels=8 * 16, cin=16, cout=96)),
}

CMSIS_NN_ANCHORS = {  # MAC/instr of CMSIS-NN on the same shapes and QEMU machines (issue 12)
    "cortex-m4": {"pointwise": 0.496, "conv3x3": 0.519, "dw3x3": 0.125, "stem3x3s2": 0.210},
    "cortex-m55": {"pointwise": 2.54, "conv3x3": 3.91, "dw3x3": 0.43, "stem3x3s2": 0.71},
}

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "mcu_kernels.json"

CONVS = {  # name: conv geometry (NCHW input 1 x in_ch x size x size)
    "conv1x1": dict(in_ch=16, out_ch=16, kernel=1, stride=1, padding=0, groups=1, size=16),
    "conv3x3": dict(in_ch=16, out_ch=16, kernel=3, stride=1, padding=1, groups=1, size=16),
    "dw3x3": dict(in_ch=16, out_ch=16, kernel=3, stride=1, padding=1, groups=16, size=16),
    "stem3x3s2": dict(in_ch=3, out_ch=16, kernel=3, stride=2, padding=1, groups=1, size=32),
}


def conv_macs(in_ch, out_ch, kernel, stride, padding, groups, size) -> int:
    """Multiply-accumulates of one conv: output pixels x out_ch x (in_ch/groups) x k x k."""
    out = (size + 2 * padding - kernel) // stride + 1
    return out * out * out_ch * (in_ch // groups) * kernel * kernel


def measure(targets: list[str], work: Path, schedule: bool = True) -> list[dict]:
    """Compiles (with or without the default TIR schedule), runs and measures every conv."""
    from compiler.driver import compile_model
    from qanas.bench.runners import random_inputs
    from runtime.runners.base import read_io
    from runtime.runners.firmware_base import HostReferenceRunner
    from runtime.runners.qemu import QemuRunner
    from tests.support.qdq_models import brevitas_conv_model

    rows = []
    for name, geom in CONVS.items():
        (work / name).mkdir(parents=True, exist_ok=True)
        onnx_path = brevitas_conv_model(work / name, act="relu", seed=0, **geom)
        project = compile_model(onnx_path, targets[0], work / name / "project",
                                schedule=schedule).out_dir
        in_specs, _ = read_io(project)
        inputs = {s.name: a for s, a in zip(in_specs, random_inputs(in_specs, 0), strict=True)}
        reference = HostReferenceRunner().run(project, inputs).outputs
        macs = conv_macs(**geom)
        for target in targets:
            result = QemuRunner(target, profile_layers=True).run(project, inputs)
            exact = all(np.array_equal(result.outputs[k], reference[k]) for k in reference)
            kernel_instr = sum(layer["value"] for layer in result.protocol["layers"])
            rows.append({"conv": name, "target": target, "schedule": schedule, "macs": macs,
                         "kernel_instructions": kernel_instr,
                         "run_instructions": result.protocol["latency"][0],
                         "macs_per_instr": macs / kernel_instr,
                         "peak_macs_per_instr": PEAK_MACS_PER_INSTR[target],
                         "bit_exact_with_host": exact})
    return rows


def library_cases(seed: int = 0, isa: str = "dsp") -> list:
    """The library's `KernelCase` of each shape (seeded data; scales that keep outputs in
    range, all below 0.25 as in trained convs; weights packed for ``isa``)."""
    from tests.support.kernel_library_util import conv_case, pointwise_case

    rng = np.random.default_rng(seed)
    cases = []
    for name, (_, spec) in LIBRARY_SHAPES.items():
        spec = dict(spec)
        kind = spec.pop("kind")
        if kind == "pointwise":
            cases.append(pointwise_case(name, rng, wide=0, isa=isa, **spec))
        else:
            cases.append(conv_case(name, rng, wide=0, depthwise=kind == "depthwise",
                                   cout=spec.pop("cout", 0), isa=isa, **spec))
    return cases


def measure_library(targets: list[str], work: Path, seed: int = 0) -> list[dict]:
    """Builds the driver for each target, runs it in QEMU and returns one row per shape."""
    from compiler.kernels import isa_for_cpu
    from tests.support.kernel_library_util import (
        build_firmware,
        check_results,
        parse_driver_output,
        run_firmware,
        ticks_to_instructions,
    )

    rows = []
    for target in targets:
        cases = library_cases(seed, isa_for_cpu(target))
        elf = build_firmware(cases, work / target, target, dump=False)
        isa, results = parse_driver_output(run_firmware(elf, target), cases)
        wrong = set(check_results(cases, results))
        for case, result in zip(cases, results, strict=True):
            instr = ticks_to_instructions(result.ticks, target)
            anchor = CMSIS_NN_ANCHORS.get(target, {}).get(case.name)
            ours = case.macs / instr
            rows.append({"kernel": case.name, "shape": LIBRARY_SHAPES[case.name][0],
                         "target": target, "isa": isa, "macs": case.macs,
                         "instructions": round(instr), "macs_per_instr": ours,
                         "cmsis_nn_macs_per_instr": anchor,
                         "ratio_to_cmsis_nn": None if anchor is None else ours / anchor,
                         "peak_macs_per_instr": PEAK_MACS_PER_INSTR[target],
                         "bit_exact_with_reference": case.name not in wrong})
    return rows


def _provenance(targets: list[str], seed: int) -> dict:
    """Toolchain, emulator and commit of a run, for the JSON."""
    import subprocess

    from runtime.runners.qemu import qemu_version
    from targets import get_target

    def first_line(cmd: list[str]) -> str:
        try:
            return subprocess.run(cmd, capture_output=True, text=True).stdout.splitlines()[0]
        except (OSError, IndexError):
            return "unknown"

    return {"command": "benchmarks/mcu_kernels.py --targets " + " ".join(targets),
            "seed": seed, "qemu": qemu_version(),
            "cc": first_line(["arm-none-eabi-gcc", "--version"]),
            "cflags": {t: list(get_target(t).toolchain.cflags) for t in targets},
            "commit": first_line(["git", "-C", str(Path(__file__).resolve().parents[1]),
                                  "rev-parse", "HEAD"]),
            "counting": "QEMU -icount shift=0, SysTick around each kernel call"}


def print_library_table(rows: list[dict]) -> None:
    """Ours beside the CMSIS-NN anchor and the ratio, one line per shape and target."""
    print(f"{'kernel':<28} {'target':<11} {'isa':<5} {'MACs':>8} {'instr':>9} "
          f"{'MAC/instr':>9} {'CMSIS-NN':>8} {'ratio':>6} exact")
    for r in rows:
        anchor = "-" if r["cmsis_nn_macs_per_instr"] is None else \
            f"{r['cmsis_nn_macs_per_instr']:.3f}"
        ratio = "-" if r["ratio_to_cmsis_nn"] is None else f"{r['ratio_to_cmsis_nn']:.2f}x"
        print(f"{r['shape']:<28} {r['target']:<11} {r['isa']:<5} {r['macs']:>8} "
              f"{r['instructions']:>9} {r['macs_per_instr']:>9.3f} {anchor:>8} {ratio:>6} "
              f"{r['bit_exact_with_reference']}")


def main(argv: list[str] | None = None) -> int:
    """Prints the table (or JSON) of MACs per instruction."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", nargs="+", default=None,
                        help="default: cortex-m4 cortex-m7 cortex-m55 (--tvm: m4 and m55)")
    parser.add_argument("--tvm", action="store_true",
                        help="measure the TVM-generated kernels instead of the library")
    parser.add_argument("--no-schedule", action="store_true",
                        help="--tvm: the unscheduled loop nests (compile_model(schedule=False))")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help="where the library run's JSON is written")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not args.tvm:
        targets = args.targets or ["cortex-m4", "cortex-m7", "cortex-m55"]
        with tempfile.TemporaryDirectory(prefix="qanas-mcu-kernels-") as tmp:
            rows = measure_library(targets, Path(tmp), args.seed)
        report = {"provenance": _provenance(targets, args.seed), "rows": rows}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        if args.json:
            print(json.dumps(report, indent=2))
        else:
            print_library_table(rows)
            print(f"(written to {args.out})")
        return 0 if all(r["bit_exact_with_reference"] for r in rows) else 1
    args.targets = args.targets or ["cortex-m4", "cortex-m55"]
    with tempfile.TemporaryDirectory(prefix="qanas-mcu-kernels-") as tmp:
        rows = measure(args.targets, Path(tmp), schedule=not args.no_schedule)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'conv':<10} {'target':<11} {'MACs':>8} {'instr':>10} {'MAC/instr':>9} "
          f"{'peak':>5} {'% peak':>7} exact")
    for r in rows:
        print(f"{r['conv']:<10} {r['target']:<11} {r['macs']:>8} "
              f"{r['kernel_instructions']:>10.0f} {r['macs_per_instr']:>9.4f} "
              f"{r['peak_macs_per_instr']:>5.0f} {100 * r['macs_per_instr'] / r['peak_macs_per_instr']:>6.2f}% "
              f"{r['bit_exact_with_host']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
