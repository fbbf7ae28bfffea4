"""From a model file to Vela's estimates: QDQ ONNX → int8 TFLite → Vela.

`as_tflite` accepts either a ``.tflite`` (used as is) or a QDQ ONNX model from
`qanas.quant.export.export_qdq` (converted by `compiler.tflite.export_tflite`).
`estimate` runs the whole chain for one NPU target.
"""

from __future__ import annotations

from pathlib import Path

from compiler.errors import CompilerError
from compiler.npu.vela import VelaResult, run_vela
from targets import Target


def as_tflite(model: str | Path, work_dir: str | Path) -> Path:
    """`model` when it is a ``.tflite`` file, else its int8 TFLite export in `work_dir`.

    Raises:
        FileNotFoundError: `model` does not exist.
        CompilerError: `model` is neither a ``.tflite`` nor an ``.onnx`` file.
    """
    model = Path(model)
    if not model.is_file():
        raise FileNotFoundError(f"model {model} not found")
    if model.suffix == ".tflite":
        return model
    if model.suffix != ".onnx":
        raise CompilerError(f"{model}: an NPU target takes a QDQ .onnx model (qanas eval "
                            "--export) or an int8 .tflite; got a {model.suffix or 'no'} file")
    from compiler.tflite import export_tflite

    out = Path(work_dir) / f"{model.stem}.tflite"
    out.parent.mkdir(parents=True, exist_ok=True)
    return Path(export_tflite(str(model), out).path)


def estimate(model: str | Path, target: Target, work_dir: str | Path,
             optimise: str = "Performance") -> VelaResult:
    """Vela's estimates of `model` (ONNX or TFLite) on `target`; files go to `work_dir`."""
    work_dir = Path(work_dir)
    tflite = as_tflite(model, work_dir)
    return run_vela(tflite, target, work_dir / f"vela-{optimise.lower()}", optimise)
