"""MACs per instruction of the generated int8 conv kernels on Cortex-M4 and Cortex-M55 (QEMU).

For each conv (1x1, 3x3, depthwise 3x3, stride-2 stem) an int8 Brevitas model is
exported, compiled by `compiler.driver.compile_model` (TVM C kernels), built into
firmware with per-kernel timing and run in QEMU with -icount shift=0; the kernel's
instruction count gives MACs/instr, printed beside the physical peak of the ISA:
2 MAC/instr on M4 (SMLAD: two 16x16 MACs), 16 on M55 (VMLADAV.S8 over a 128-bit vector).
Outputs are checked bit-exact against the host build of the same C.

Measured (QEMU 7.2, arm-none-eabi-gcc 12.2 -O2; MACs per instruction of the kernel,
unscheduled with --no-schedule → with the default TIR schedule of compiler.codegen.schedule):

    conv        cortex-m4          cortex-m55
    conv1x1     0.0629 → 0.1025    0.0761 → 0.1191
    conv3x3     0.0648 → 0.0654    0.0576 → 0.0656
    dw3x3       0.0368 → 0.0488    0.0386 → 0.0498
    stem3x3s2   0.0520 → 0.0679    0.0463 → 0.0685

Usage: .venv/bin/python benchmarks/mcu_kernels.py [--json] [--no-schedule]
       [--targets cortex-m4 cortex-m55]
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
    from qanas.cli.commands.bench import random_inputs
    from runtime.runners.base import read_io
    from runtime.runners.firmware_base import HostReferenceRunner
    from runtime.runners.qemu import QemuRunner
    from tests.qdq_models import brevitas_conv_model

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


def main(argv: list[str] | None = None) -> int:
    """Prints the table (or JSON) of MACs per instruction."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", nargs="+", default=["cortex-m4", "cortex-m55"])
    parser.add_argument("--no-schedule", action="store_true",
                        help="the unscheduled loop nests (compile_model(schedule=False))")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
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
