"""The NPU deploy bundle: a Vela-optimised model and the C/C++ glue that runs it on a board.

`write_npu_bundle` compiles an int8 TFLite model with Vela for an Ethos-U target and
writes a folder a firmware engineer drops into a board SDK project (the files and the
integration steps are in the generated README, from ``templates/README.md.in``):

* ``model_vela.tflite`` and ``model_data.c/.h``: the optimised model as a 16-byte aligned
  ``const unsigned char`` array in section ``.qanas_npu_model``;
* ``qanas_npu.h/.cc``: TensorFlow Lite Micro glue, a ``MicroMutableOpResolver`` with
  ``AddEthosU()`` plus every builtin operator Vela left on the CPU (read from the
  optimised model itself), and the tensor arena;
* ``ethosu_init.c``: ``ethosu_init()`` of the Arm Ethos-U core driver, interrupt hook;
* ``bundle.json``: Vela's estimates, the arena size, versions; ``vela/``: Vela's files;
* ``.qanas-project``: the marker (`compiler.project.output_dir`) that lets ``--force``
  replace this folder, and only a folder that carries it.

**Arena size.** TFLM allocates every tensor of the model in one arena. Vela plans the
NPU's tensors itself and reports the peak of its feature-map memory (SRAM in
``Shared_Sram``, DRAM in ``Dedicated_Sram``); the arena is that figure plus
`TFLM_OVERHEAD_BYTES` for TFLM's own persistent allocations (interpreter, tensor
structs, the Ethos-U operator's data), plus the bytes of the model's inputs and outputs
when operators stay on the CPU (their tensors are outside Vela's plan), rounded up to 16.
`qanas_npu_arena_used()` reports the real use on the board.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from string import Template

from compiler.npu.model_info import ModelInfo, read_model_info
from compiler.npu.report import VelaReport
from compiler.npu.vela import npu_config_of, run_vela, vela_version
from compiler.plan import c_identifier
from compiler.project.output_dir import (
    BUNDLE_KIND,
    OutputDirExistsError,
    check_output_dir,
    write_marker,
)
from targets import Target

TFLM_OVERHEAD_BYTES = 16 * 1024
"""Margin for TFLM's persistent allocations (interpreter, TfLiteTensor/TfLiteEvalTensor
structs, operator user data); a few KiB for the graphs of our search spaces."""

ALIGN = 16
MODEL_SECTION = ".qanas_npu_model"
TEMPLATES = Path(__file__).with_name("templates")
BUNDLE_FILES = ("model_vela.tflite", "model_data.c", "model_data.h", "qanas_npu.h",
                "qanas_npu.cc", "ethosu_init.c", "README.md", "bundle.json")


class BundleExistsError(OutputDirExistsError):
    """The output folder holds files, and ``force`` was not given or it is not a bundle."""


@dataclass(frozen=True)
class NpuBundle:
    """A written bundle: its folder, Vela's report, the arena and fast-memory sizes."""

    out_dir: Path
    report: VelaReport
    model: ModelInfo
    arena_bytes: int
    fast_memory_bytes: int

    def to_dict(self) -> dict:
        """The content of ``bundle.json``."""
        return {"out_dir": str(self.out_dir), "files": list(BUNDLE_FILES),
                "arena_bytes": self.arena_bytes, "fast_memory_bytes": self.fast_memory_bytes,
                "arena_method": f"Vela feature-map bytes ({self.report.feature_map_bytes}) + "
                                f"TFLM overhead ({TFLM_OVERHEAD_BYTES})"
                                + (" + model I/O bytes (CPU operators)" if self.model.cpu_ops
                                   else "") + f", rounded up to {ALIGN}",
                "model_section": MODEL_SECTION,
                "cpu_ops": list(self.model.cpu_ops),
                "inputs": [t.to_dict() for t in self.model.inputs],
                "outputs": [t.to_dict() for t in self.model.outputs],
                "vela": self.report.to_dict()}


def arena_bytes(report: VelaReport, model: ModelInfo) -> int:
    """The TFLM tensor arena for this model (see the module docstring)."""
    total = report.feature_map_bytes + TFLM_OVERHEAD_BYTES
    if model.cpu_ops:
        total += sum(t.bytes for t in (*model.inputs, *model.outputs))
    return -(-total // ALIGN) * ALIGN


def fast_memory_bytes(report: VelaReport) -> int:
    """Bytes of fast memory for the driver: Vela's arena cache in Dedicated_Sram, else 0."""
    return report.arena_cache_bytes if report.memory_mode.startswith("Dedicated_Sram") else 0


def resolver_method(builtin: str) -> str:
    """TFLM's ``MicroMutableOpResolver`` method for a builtin: ``CONV_2D`` → ``AddConv2D``."""
    return "Add" + "".join(t.upper() if t[:1].isdigit() else t.capitalize()
                           for t in builtin.split("_"))


def write_npu_bundle(tflite: str | Path, target: Target, out_dir: str | Path,
                     optimise: str = "Performance", force: bool = False) -> NpuBundle:
    """Compiles `tflite` with Vela for `target` and writes the deploy bundle into `out_dir`.

    The folder appears complete or not at all (written beside it, then renamed).

    Args:
        tflite: an int8 TFLite model (`compiler.tflite.export_tflite`).
        target: an Ethos-U target (``ethos-u55-128``...).
        out_dir: the bundle folder.
        optimise: Vela's ``--optimise`` strategy.
        force: replace an existing bundle in `out_dir` (one with the qanas marker);
            an empty or new folder needs no `force`, any other folder is refused.

    Raises:
        BundleExistsError: `out_dir` holds files and `force` is False, or it is not a
            bundle qanas wrote (then nothing is touched).
        OutputIsAFileError: `out_dir` is a file.
        VelaError: Vela failed.
    """
    out_dir = Path(out_dir).resolve()
    _check_out_dir(out_dir, force)
    npu_config_of(target)  # refuses a CPU target before any work
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        result = run_vela(tflite, target, work / "vela", optimise)
        model = read_model_info(result.optimized_tflite)
        report = result.report
        bundle = NpuBundle(out_dir, report, model, arena_bytes(report, model),
                           fast_memory_bytes(report))
        data = result.optimized_tflite.read_bytes()
        shutil.copyfile(result.optimized_tflite, work / "model_vela.tflite")
        values = _template_values(bundle, target, optimise)
        (work / "model_data.h").write_text(_model_data_h(len(data)))
        (work / "model_data.c").write_text(_model_data_c(data, target.name))
        for name in ("qanas_npu.h", "qanas_npu.cc", "ethosu_init.c", "README.md"):
            text = Template((TEMPLATES / f"{name}.in").read_text()).substitute(values)
            (work / name).write_text(text)
        (work / "bundle.json").write_text(json.dumps(
            {**bundle.to_dict(), "target": target.name, "versions": _versions()}, indent=2))
        write_marker(work, BUNDLE_KIND)
        _check_out_dir(out_dir, force)  # still ours after Vela's minutes
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(work, out_dir)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return bundle


def _check_out_dir(out_dir: Path, force: bool) -> None:
    try:
        check_output_dir(out_dir, force, BUNDLE_KIND)
    except OutputDirExistsError as exc:
        raise BundleExistsError(str(exc)) from None


def _template_values(bundle: NpuBundle, target: Target, optimise: str) -> dict[str, str]:
    r, m = bundle.report, bundle.model
    cfg = npu_config_of(target)
    dedicated = r.memory_mode.startswith("Dedicated_Sram")
    io = []
    for kind, tensors in (("INPUT", m.inputs), ("OUTPUT", m.outputs)):
        for i, t in enumerate(tensors):
            io.append(f"/* {kind.lower()} {i} ({c_identifier(t.name)}): {t.dtype} "
                      f"{'x'.join(map(str, t.shape))} */")
            io.append(f"#define QANAS_NPU_{kind}{i}_BYTES {t.bytes}u")
            if t.scale is not None:
                io.append(f"#define QANAS_NPU_{kind}{i}_SCALE {t.scale!r}f")
                io.append(f"#define QANAS_NPU_{kind}{i}_ZERO_POINT ({t.zero_point})")
    registrations = "\n".join(
        f"  if (resolver.{resolver_method(op)}() != kTfLiteOk) return QANAS_NPU_ERR_RESOLVER;"
        for op in m.cpu_ops)
    if m.cpu_ops:
        lines = [f"- `{c.op}` → `{c.tensor}`: {c.reason}" for c in r.cpu_fallback]
        cpu_section = ("## Operators Vela left on the CPU\n\nTFLite Micro runs these with its "
                       "reference or CMSIS-NN kernels (registered in `qanas_npu.cc`):\n\n"
                       + "\n".join(lines or [f"- `{op}`" for op in m.cpu_ops]))
    else:
        cpu_section = "Every operator runs on the NPU (one `ethos-u` custom operator)."
    return {
        "target": target.name, "network": r.network, "accelerator": r.accelerator,
        "system_config": r.system_config, "memory_mode": r.memory_mode, "optimise": optimise,
        "vela_version": vela_version(), "npu_cycles": str(r.npu_cycles),
        "total_cycles": str(r.total_cycles), "clock_mhz": f"{r.clock_hz / 1e6:g}",
        "latency_ms": f"{r.latency_s * 1e3:.3f}", "feature_map_bytes": str(r.feature_map_bytes),
        "arena_memory": "DRAM" if dedicated else "SRAM",
        "model_memory": "DRAM/flash behind AXI1",
        "fast_memory_note": (f", and `.qanas_npu_fast_memory` ({bundle.fast_memory_bytes} "
                             "bytes, the NPU's cache) in on-chip SRAM" if dedicated else ""),
        "arena_bytes": str(bundle.arena_bytes), "overhead_bytes": str(TFLM_OVERHEAD_BYTES),
        "fast_memory_bytes": str(bundle.fast_memory_bytes), "model_bytes": str(r.model_bytes),
        "npu_ops": str(r.npu_ops), "cpu_ops": str(r.cpu_ops), "cpu_section": cpu_section,
        "num_inputs": str(len(m.inputs)), "num_outputs": str(len(m.outputs)),
        "io_macros": "\n".join(io), "cpu_op_registrations": registrations,
        "num_operators": str(1 + len(m.cpu_ops)),
        "cpu_ops_comment": ", ".join(m.cpu_ops) or "none",
        "ethosu_arch": cfg.accelerator.split("-")[1], "cpu": target.cpu,
    }


def _model_data_h(size: int) -> str:
    return (f"/* The Vela-optimised model (generated by qanas; do not edit). */\n"
            f"#ifndef QANAS_NPU_MODEL_DATA_H_\n#define QANAS_NPU_MODEL_DATA_H_\n\n"
            f"#ifdef __cplusplus\nextern \"C\" {{\n#endif\n\n"
            f"#define QANAS_NPU_MODEL_BYTES {size}u\n\n"
            f"extern const unsigned char qanas_npu_model[QANAS_NPU_MODEL_BYTES];\n\n"
            f"#ifdef __cplusplus\n}}\n#endif\n\n#endif /* QANAS_NPU_MODEL_DATA_H_ */\n")


def _model_data_c(data: bytes, target: str) -> str:
    rows = [", ".join(f"0x{b:02x}" for b in data[i:i + 16]) for i in range(0, len(data), 16)]
    body = ",\n    ".join(rows)
    return (f"/* The Vela-optimised model for {target} (generated by qanas; do not edit). */\n"
            f"#include \"model_data.h\"\n\n"
            f"const unsigned char qanas_npu_model[QANAS_NPU_MODEL_BYTES]\n"
            f"    __attribute__((aligned({ALIGN}), section(\"{MODEL_SECTION}\"))) = {{\n"
            f"    {body}\n}};\n")


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"ethos-u-vela": vela_version()}
    for pkg in ("onnx", "flatbuffers"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out
