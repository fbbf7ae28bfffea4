"""Demo stage 9: the chosen subnet as int8 TFLite, compiled by Vela for an Ethos-U NPU."""

from __future__ import annotations

from pathlib import Path


def npu_stage(onnx_path: Path, target_name: str, out: Path) -> dict:
    """Exports the QDQ model to TFLite (`compiler.tflite`), runs Vela, returns the `npu` section.

    Every figure is Vela's estimate (``estimate: true``), labelled with its
    protocol; the operators Vela leaves on the CPU are listed by name.
    """
    from compiler.npu.flow import estimate
    from targets import get_target

    result = estimate(onnx_path, get_target(target_name), out)
    report = result.report.to_dict()
    return {
        "target": target_name,
        "tflite": str(out / f"{Path(onnx_path).stem}.tflite"),
        "optimized_tflite": str(result.optimized_tflite),
        "cycles": report["total_cycles"],
        "flash_bytes": report["model_bytes"],
        **report,
    }
