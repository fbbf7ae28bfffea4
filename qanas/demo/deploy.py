"""Demo stages 5–7: compile the chosen subnet, check it on the host, run its firmware in QEMU."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from qanas.search.archive import EvalRecord
from qanas.utils import progress


def quantize_input(image: torch.Tensor, scale: float, zero_point: int) -> np.ndarray:
    """Float image(s) → the int8 tensor the compiled model's input expects."""
    q = np.round(image.numpy() / scale) + zero_point
    return np.clip(q, -128, 127).astype(np.int8)


def compile_for_target(onnx_path: Path, target: str, out_dir: Path, optimise: str):
    """`compiler.compile_model` for `target` in ``--optimise`` mode `optimise` (raises
    `MemoryBudgetExceeded` when it does not fit)."""
    from compiler.driver import compile_model

    return compile_model(str(onnx_path), target, out_dir, force=True, optimise=optimise)


def check_project_folders(out: Path, latency_subnets: int) -> None:
    """Refuses, before any work, project folders of an earlier run that compile may not replace.

    The demo compiles into ``out/project`` and ``out/latency/subnet{i}`` with force; a folder
    there without the qanas project marker (written by an older qanas, or by the user) would
    stop the demo at its compile stage, after the training. This fails in the first second
    instead, naming the folder (`compiler.project.output_dir.OutputDirExistsError`).
    """
    from compiler.project.output_dir import PROJECT_KIND, check_output_dir

    folders = [out / "project", *(out / "latency" / f"subnet{i}" for i in range(latency_subnets))]
    for folder in folders:
        check_output_dir(folder, True, PROJECT_KIND, flag="the demo's project folder")


def compile_first_fitting(candidates: Sequence[EvalRecord], export, target: str,
                          out: Path, optimise: str) -> dict:
    """Exports and compiles `candidates` in order until one fits the target's memory.

    Args:
        candidates: the knee first, then the rest of the front.
        export: callable(arch, onnx_path) → the fake-quant model it exported.
        target: target name.
        out: run directory (``chosen.onnx`` and ``project/`` are written there).
        optimise: the compiler mode (the search's).
    """
    from compiler.errors import MemoryBudgetExceeded

    rejected = []
    for record in candidates:
        onnx_path = out / "chosen.onnx"
        qmodel = export(record.arch, onnx_path)
        try:
            compiled = compile_for_target(onnx_path, target, out / "project", optimise)
        except MemoryBudgetExceeded as exc:
            rejected.append({"arch": record.arch, "reason": str(exc)})
            continue
        return {"record": record, "qmodel": qmodel, "onnx": onnx_path, "compiled": compiled,
                "rejected": rejected}
    raise MemoryBudgetExceeded(
        f"none of the {len(candidates)} front subnets fits {target}; reasons: "
        f"{[r['reason'] for r in rejected]}; try a smaller --image-size or a target with "
        "more SRAM")


def host_fidelity(chosen: dict, scorer, images: int) -> dict:
    """Compiled C vs onnxruntime and vs the NumPy integer reference; deployed vs fake-quant mIoU."""
    from compiler.reference import boundary, run_int8_reference
    from qanas.data import ConfusionMatrix
    from qanas.quant import run_onnx
    from runtime.runners import get_runner
    from runtime.runners.base import read_io

    project = chosen["compiled"].out_dir
    (inp,), (outp,) = read_io(project)
    runner = get_runner("host")
    num_classes = scorer.supernet.num_classes
    deployed = ConfusionMatrix(num_classes, scorer.ignore_index)
    fake = ConfusionMatrix(num_classes, scorer.ignore_index)
    exact = total = reference_exact = 0
    max_lsb = 0
    reference_input = boundary(chosen["onnx"]).inputs[0].name
    seconds = []
    done = 0
    for image_batch, mask_batch in scorer.val_batches:
        for image, mask in zip(image_batch, mask_batch, strict=True):
            if done >= images:
                break
            xq = quantize_input(image[None], inp.scale, inp.zero_point)
            result = runner.run(project, {inp.name: xq})
            ours = result.outputs[outp.name].astype(np.int32).reshape(outp.shape)
            seconds += result.latency_s
            x_float = (xq.astype(np.float32) - inp.zero_point) * inp.scale
            ref = np.asarray(run_onnx(chosen["onnx"], x_float))
            ref_q = np.clip(np.round(ref / outp.scale) + outp.zero_point, -128, 127)
            diff = np.abs(ours - ref_q.astype(np.int32))
            integer = run_int8_reference(chosen["onnx"], {reference_input: xq})
            reference_exact += int((next(iter(integer.values())).reshape(outp.shape)
                                    == ours).sum())
            exact += int((diff == 0).sum())
            total += diff.size
            max_lsb = max(max_lsb, int(diff.max()))
            deployed.update(torch.from_numpy(ours).argmax(1), mask[None])
            with torch.no_grad():
                fq = chosen["qmodel"](torch.from_numpy(x_float))
            fq = fq.value if hasattr(fq, "value") else fq
            fake.update(fq.argmax(1), mask[None])
            done += 1
    return {
        "images": done,
        "bit_exact_fraction": exact / max(total, 1),
        "max_lsb_diff": max_lsb,
        "reference": "onnxruntime on the same QDQ model (optimizations off)",
        "bit_exact_fraction_integer_reference": reference_exact / max(total, 1),
        "integer_reference": "compiler.reference NumPy int8 interpreter of the QDQ model",
        "miou_deployed_int8": deployed.miou(),
        "miou_fake_quant": fake.miou(),
        "host_latency_s_median": float(np.median(seconds)) if seconds else None,
    }


def firmware_runs(project: Path, targets: Sequence[str], image: np.ndarray,
                  profile_target: str | None = None) -> list[dict]:
    """Builds and runs the firmware in QEMU per target; compares outputs with the host build.

    Each target runs twice (the instruction count must repeat exactly); `profile_target`
    runs a third time with per-kernel timers (`layers`).
    """
    from runtime.firmware import FirmwareDoesNotFit
    from runtime.runners import get_runner
    from runtime.runners.base import read_io
    from runtime.runners.firmware_base import HostReferenceRunner

    (inp,), _ = read_io(project)
    inputs = {inp.name: image}
    reference = HostReferenceRunner().run(project, inputs)
    rows = []
    for name in progress(list(targets), desc="firmware under QEMU"):
        runner = get_runner("qemu", target=name)
        try:
            result = runner.run(project, inputs)
            again = runner.run(project, inputs)  # a second emulator run of the same image
        except FirmwareDoesNotFit as exc:
            rows.append({"target": name, "fits": False, "reason": str(exc)})
            continue
        proto = result.protocol
        match = all(np.array_equal(result.outputs[k], reference.outputs[k])
                    for k in reference.outputs)
        layers = []
        if name == profile_target:
            profiled = get_runner("qemu", target=name, profile_layers=True).run(project, inputs)
            layers = profiled.protocol.get("layers", [])
        rows.append({
            "target": name,
            "fits": True,
            "latency": proto.get("latency"),
            "unit": proto.get("unit"),
            "clock_hz": proto.get("clock_hz"),
            "repeatable": proto.get("latency") == again.protocol.get("latency"),
            "flash_bytes": proto.get("flash_bytes"),
            "sram_bytes": proto.get("sram_bytes"),
            "outputs_match_host": bool(match),
            "layers": layers,
        })
    return rows
