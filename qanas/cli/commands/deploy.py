"""`qanas deploy MODEL.onnx --target cortex-m7 --out DIR`: firmware project + ELF.

Compiles the model into DIR (the C project), checks the plan against the target's SRAM
and flash, writes DIR/firmware-<target>/ (Makefile, linker script with the target's
memory, port, harness, inputs) and builds the ELF. A model that does not fit is refused
with the numbers, first from the plan, then by the linker.

For an Ethos-U target (``--target ethos-u55-128``) DIR becomes a TFLite Micro bundle
instead: the Vela-optimised model as a C array, the TFLM + Ethos-U driver glue and
integration steps (`compiler.npu.bundle`).
"""

from __future__ import annotations

import argparse

from qanas.cli.command import Command


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="ONNX model, or an already compiled project directory")
    parser.add_argument("--target", required=True, help="firmware target, e.g. cortex-m7")
    parser.add_argument("--out", help="output directory (required for an ONNX model)")
    parser.add_argument("--io", choices=("semihosting", "uart"), default=None,
                        help="console: semihosting (QEMU, probe) or uart (serial protocol); "
                             "default from the target's runner")
    parser.add_argument("--per-layer", action="store_true", help="time every kernel")
    parser.add_argument("--seed", type=int, default=0, help="seed of the embedded input")
    parser.add_argument("--planner", default="greedy", help="memory planner")
    parser.add_argument("--force", action="store_true",
                        help="replace a project qanas wrote in --out (a folder without its "
                             ".qanas-project marker is refused, untouched)")
    parser.add_argument("--optimise", choices=("Performance", "Size"), default="Performance",
                        help="NPU targets (ethos-u*): Vela's optimisation strategy")


def _run(args: argparse.Namespace) -> dict:
    from qanas.bench.runners import compile_if_model, random_inputs
    from runtime.firmware import build_firmware, check_fits, prepare_firmware
    from runtime.runners.base import read_io
    from targets import get_target

    target = get_target(args.target)
    if target.npu_config is not None:  # Ethos-U: Vela + TFLite Micro bundle
        from compiler.project.output_dir import BUNDLE_KIND, check_output_dir
        from qanas.cli.commands._npu import deploy_npu

        if args.out:  # a file, or a folder qanas did not write: refused before Vela runs
            check_output_dir(args.out, args.force, BUNDLE_KIND)

        return deploy_npu(args, target)
    project = compile_if_model(args.model, target, args.out, args.planner, args.force)
    budget = check_fits(project, target)
    in_specs, _ = read_io(project)
    io = args.io or ("uart" if target.runner == "serial" else "semihosting")
    fw = prepare_firmware(project, target, random_inputs(in_specs, args.seed), io=io,
                          profile_layers=args.per_layer)
    image = build_firmware(fw, target)
    return {"project": str(project), "firmware_dir": str(fw), "elf": str(image.elf),
            "target": target.name, "io": io, "flash_bytes": image.flash_bytes,
            "sram_bytes": {"arena": image.arena_bytes, "static": image.static_sram_bytes,
                           "stack_reserved": image.stack_bytes},
            "budget": budget, "flash_command": list(target.flash_command)}


COMMAND = Command("deploy", "compile a model into a firmware project for a target and "
                  "build the ELF", _add_arguments, _run)
