"""Re-fit the analytic latency coefficients (`targets.latency`) per target from QEMU counts.

For squeezenas-small subnets at 64x128 (6 classes, the demo's export,
`tests.support.firmware_util.export_subnet`) and each MCU target in `--targets`, each subnet is
compiled in the ``--optimise`` mode (``size``, the default: the first blocks in a patch
stage, then fused inverted residuals; ``speed``: every inverted residual fused, no patch
stage) and run once per layer in QEMU ``-icount shift=0`` through the runner `qanas bench
--per-layer` uses (`qanas.bench.runners.make_runner`, ``per_layer=True``): retired
instructions of every plan step, deterministic, so machine load does not change them.
Each profiled step is matched to the subnet's layer descriptors (`SearchSpace.layer_specs`,
what the analytic model prices) by `qanas.cost.latency_fit.step_rows`, and the model's
coefficients are fitted per target by non-negative least squares
(`qanas.cost.latency_fit.fit_target`), with leave-one-subnet-out R^2 / MAPE / Kendall's tau
on whole models. Each mode has a fit of its own (``coefficients.<mode>`` of the file, its
protocol ``protocol.<mode>``; a run replaces its mode's and keeps the other's); where the
other mode's runs of the same subnets are saved, the quality also says how the other
mode's fit, held out the same way, prices these builds (``other_mode_fit``):

    .venv/bin/python benchmarks/fit_latency_coefficients.py \\
        --which seed min max --random 2 --random-seed 1 \\
        --targets cortex-m4 cortex-m7 cortex-m55 --optimise size
    .venv/bin/python benchmarks/fit_latency_coefficients.py \\
        --which seed min max --random 2 --random-seed 1 \\
        --targets cortex-m4 cortex-m7 cortex-m55 --optimise speed

Raw runs are kept in ``--runs`` (default: one file per mode, `RUNS`; resumable: a (target,
subnet, mode) already there is not run again; ``--rerun TARGET ...`` drops those targets'
saved runs first, for a kernel change that leaves the kernel generation as it is, such as
the int4 kernels'); the fit is written to ``--out`` (default: the committed
``targets/latency_coefficients.json``, which `targets.latency` loads).

``--bits w4`` fits the int4 kernels instead (`qanas.cost.latency_fit_int4`): each subnet
is profiled twice, with every searchable conv at 4 bits and all-int8, and the
4-bit kernels' steps are paired with the int8 kernels' steps of the same layers, and the
fused inverted-residual steps of the two builds with each other (the ``fused_pointwise``
rate of their 4-bit stages). It writes the ``int4`` section (the int4 / int8 ratios that
scale either mode's int8 rates, `targets.latency.int4_rates`, scored against the int8 fit
of its ``--optimise`` mode) and an ``int4`` protocol, and leaves the int8 coefficients as
they are; its all-int8 builds are the ``speed`` int8 fit's runs:

    .venv/bin/python benchmarks/fit_latency_coefficients.py --bits w4 --optimise speed \\
        --which seed min max --random 2 --random-seed 1 \\
        --targets cortex-m4 cortex-m7 cortex-m55

``--fit-only`` refits from the saved runs without QEMU.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SPACE = "squeezenas-small"
SIZE = (64, 128)
NUM_CLASSES = 6
RUNS = {mode: Path(__file__).parent / "results" / f"latency_fit_{mode}_runs.json"
        for mode in ("size", "speed")}
"""The saved runs of each ``--optimise`` mode (the int8 and the 4-bit builds)."""


def profile_subnet(onnx_path: Path, target_name: str, optimise: str, work: Path) -> dict:
    """Compiles `onnx_path` for the target, runs it once with per-layer profiling in QEMU."""
    from compiler.driver import compile_model
    from qanas.bench.runners import make_runner
    from targets import get_target
    from tests.support.firmware_util import inputs_and_reference

    target = get_target(target_name)
    result = compile_model(str(onnx_path), target_name, work, optimise=optimise, force=True)
    inputs, _ = inputs_and_reference(result.out_dir)
    run = make_runner("qemu", target, warmup=0, per_layer=True).run(result.out_dir, inputs)
    return {"instructions": int(run.protocol["latency"][0]),
            "layers": [{"implementation": layer["implementation"], "kernel": layer["kernel"],
                        "instructions": int(layer["value"])}
                       for layer in run.protocol["layers"]],
            "toolchain": run.protocol.get("toolchain")}


def qemu_version() -> str:
    """First line of ``qemu-system-arm --version``."""
    from runtime.runners.qemu import QEMU_SYSTEM_ARM

    out = subprocess.run([QEMU_SYSTEM_ARM, "--version"], capture_output=True, text=True)
    return out.stdout.splitlines()[0] if out.stdout else "unknown"


def random_subnets(count: int, seed: int) -> list[str]:
    """`count` subnets of the space drawn with `seed`, as config strings."""
    import numpy as np

    from qanas.space import get_space

    space, rng = get_space(SPACE), np.random.default_rng(seed)
    return [str(space.sample(rng)) for _ in range(count)]


def subnet_configs(which: list[str], bits: str) -> list[tuple[str, str]]:
    """(name, config string) of every model to profile: the subnets of `which` (``w8``),
    or each with every searchable conv at 4 bits and then itself all-int8 (``w4``)."""
    from qanas.space import get_space
    from qanas.space.bits import WeightBitsSpace, with_bits

    space = get_space(SPACE)
    bits_space = WeightBitsSpace(space, SIZE, NUM_CLASSES)
    configs = []
    for name in which:
        arch = space.resolve(name)
        if bits == "w4":
            four = with_bits(arch, [4] * bits_space.slot_count(arch))
            configs.append((f"{name}@w4", str(four)))
        configs.append((name, str(arch)))
    return configs


def collect(configs: list[tuple[str, str]], targets: list[str], optimise: str,
            runs_path: Path, rerun: tuple[str, ...] = ()) -> dict:
    """Profiles every (target, config) missing from `runs_path`, saving after each one;
    the saved runs of the targets in `rerun` are dropped first."""
    from compiler.version import KERNEL_GENERATION
    from tests.support.firmware_util import export_subnet

    runs = json.loads(runs_path.read_text()) if runs_path.is_file() else {}
    if runs and runs.get("kernel_generation") != KERNEL_GENERATION:
        runs = {}
    runs.setdefault("kernel_generation", KERNEL_GENERATION)
    runs["runs"] = [r for r in runs.get("runs", []) if r["target"] not in rerun]
    done = {(r["target"], r["subnet"], r["optimise"]) for r in runs["runs"]}
    with tempfile.TemporaryDirectory(prefix="qanas-latfit-") as tmp:
        for index, (name, config) in enumerate(configs):
            todo = [t for t in targets if (t, config, optimise) not in done]
            if not todo:
                continue
            onnx_path = export_subnet(SPACE, config, Path(tmp) / "subnet.onnx")
            for target in todo:
                start = time.time()
                # a fresh project and firmware directory per run: the firmware build
                # does not notice a recompiled model.h in a reused one (stale harness)
                row = profile_subnet(onnx_path, target, optimise,
                                     Path(tmp) / f"{index}_{target}")
                runs["runs"].append({"target": target, "which": name, "subnet": config,
                                     "optimise": optimise,
                                     "seconds": round(time.time() - start, 1), **row})
                runs_path.write_text(json.dumps(runs, indent=1) + "\n")
                print(f"{target} {name}: {row['instructions']} instructions, "
                      f"{len(row['layers'])} steps", file=sys.stderr)
    return runs


def protocol_command(args) -> str:
    """The command line that profiles and fits what `args` does."""
    bits = ["--bits", args.bits] if args.bits != "w8" else []
    return "python benchmarks/fit_latency_coefficients.py " + " ".join(
        [*bits, "--which", *args.which, "--random", str(args.random), "--random-seed",
         str(args.random_seed), "--targets", *args.targets, "--optimise", args.optimise])


def mode_runs(runs: dict, target: str, optimise: str, configs: list[str]) -> list[dict]:
    """The saved runs of `target` built in `optimise` mode of the models `configs`."""
    wanted = set(configs)
    return [r for r in runs.get("runs", []) if r["target"] == target
            and r["optimise"] == optimise and r["subnet"] in wanted]


def fit_int8(args, runs: dict, document: dict) -> dict:
    """`document` (the committed coefficient file) with every target's int8 fit of the
    ``args.optimise`` runs in `runs`, and its protocol; the other mode's fit and the int4
    section are kept."""
    from compiler.version import KERNEL_GENERATION
    from qanas.cost.latency_fit import fit_target

    configs = [c for _, c in subnet_configs(
        args.which + random_subnets(args.random, args.random_seed), "w8")]
    other = next(m for m in RUNS if m != args.optimise)
    other_runs = json.loads(RUNS[other].read_text()) if RUNS[other].is_file() else {}
    fits, toolchains = {}, {}
    for target in args.targets:
        rows = mode_runs(runs, target, args.optimise, configs)
        if not rows:
            continue
        transfer = mode_runs(other_runs, target, other, configs)
        if len(transfer) != len(rows):
            print(f"{target}: {RUNS[other]} lacks --optimise {other} runs of these subnets; "
                  f"the quality leaves out its fit's error on them", file=sys.stderr)
            transfer = None
        fits[target] = fit_target(target, rows, SPACE, SIZE, NUM_CLASSES, transfer)
        toolchains[target] = rows[0].get("toolchain")
        print(json.dumps({target: fits[target]["quality"]}), file=sys.stderr)
    document.setdefault("protocol", {})[args.optimise] = {
        "command": protocol_command(args),
        "kernel_generation": KERNEL_GENERATION,
        "date": datetime.date.today().isoformat(),
        "space": SPACE, "image_size": list(SIZE), "num_classes": NUM_CLASSES,
        "unit": "instructions (QEMU -icount shift=0, read as cycles)",
        "qemu": qemu_version(), "toolchains": toolchains,
    }
    document.setdefault("coefficients", {})[args.optimise] = fits
    return document


def fit_int4(args, runs: dict, document: dict) -> dict:
    """`document` (the committed int8 fits) with every target's ``int4`` section fitted to
    `runs` (scored against the int8 fit of ``args.optimise``) and an ``int4`` protocol; its
    int8 coefficients are left as they are."""
    from compiler.version import KERNEL_GENERATION
    from qanas.cost.latency_fit_int4 import fit_int4 as fit_target_int4
    from qanas.space import get_space
    from qanas.space.bits import arch_of, parse_config, searched_bits
    from qanas.space.layer_bits import layer_bit_widths
    from targets.latency import load_fitted

    space, base = get_space(SPACE), load_fitted(args.out, args.optimise)
    for target in args.targets:
        rows = {r["subnet"]: r for r in runs["runs"]
                if r["target"] == target and r["optimise"] == args.optimise}
        subnets = []
        for config, row in rows.items():
            cfg = parse_config(config, space)
            bits = searched_bits(cfg)
            twin = rows.get(str(arch_of(cfg)))
            if bits is None or twin is None:
                continue
            layers = space.layer_specs(arch_of(cfg), SIZE, NUM_CLASSES)
            subnets.append({"which": row["which"], "layers": layers, "int4": row,
                            "int8": twin, "widths": layer_bit_widths(layers, NUM_CLASSES, bits)})
        if not subnets:
            continue
        if target not in base:
            raise SystemExit(f"{args.out} has no --optimise {args.optimise} int8 fit of "
                             f"{target}: fit it first (the command of --bits w4 without it)")
        section = fit_target_int4(base[target], subnets)
        document.setdefault("int4", {})[target] = section
        print(json.dumps({target: section["quality"]}), file=sys.stderr)
    document["protocol"]["int4"] = {
        "command": protocol_command(args),
        "kernel_generation": KERNEL_GENERATION,
        "date": datetime.date.today().isoformat(),
        "subnets": "each with every searchable conv at 4 bits, paired with itself all-int8",
    }
    return document


def main(argv: list[str] | None = None) -> int:
    """Collects the runs, fits every target and writes the coefficient file."""
    from targets.latency import COEFFICIENTS_PATH

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--which", nargs="+", default=["seed", "min", "max"])
    parser.add_argument("--targets", nargs="+",
                        default=["cortex-m4", "cortex-m7", "cortex-m55"])
    parser.add_argument("--random", type=int, default=2,
                        help="random subnets drawn besides --which")
    parser.add_argument("--random-seed", type=int, default=1)
    parser.add_argument("--optimise", default="size", choices=("size", "speed"))
    parser.add_argument("--bits", default="w8", choices=("w8", "w4"),
                        help="w8: the int8 coefficients; w4: the int4 rates (module docstring)")
    parser.add_argument("--runs", type=Path, default=None,
                        help="raw runs (default: " + ", ".join(
                            f"{p.name} for --optimise {m}" for m, p in RUNS.items()) + ")")
    parser.add_argument("--out", type=Path, default=COEFFICIENTS_PATH)
    parser.add_argument("--fit-only", action="store_true", help="fit the runs already saved")
    parser.add_argument("--rerun", nargs="+", default=[], metavar="TARGET",
                        help="profile these targets again, dropping their saved runs")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.rerun) - set(args.targets))
    if unknown:
        parser.error(f"--rerun {' '.join(unknown)}: not in --targets {' '.join(args.targets)}")
    runs_path = args.runs or RUNS[args.optimise]
    if args.fit_only:
        runs = json.loads(runs_path.read_text())
    else:
        which = args.which + random_subnets(args.random, args.random_seed)
        runs = collect(subnet_configs(which, args.bits), args.targets, args.optimise,
                       runs_path, tuple(args.rerun))
    old = json.loads(args.out.read_text()) if args.out.is_file() else {}
    if args.bits == "w4":
        document = fit_int4(args, runs, old)
    else:
        document = fit_int8(args, runs, old)
        int4 = old.get("protocol", {}).get("int4")
        if int4 and f"--optimise {args.optimise}" in int4["command"]:
            print(f"the int4 section of {args.out} is scored against the int8 fit just "
                  f"replaced: refit it with {int4['command']} --fit-only", file=sys.stderr)
    args.out.write_text(json.dumps(document, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
