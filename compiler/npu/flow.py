"""From a model file to Vela's estimates: QDQ ONNX → int8 TFLite → Vela.

`as_tflite` accepts either a ``.tflite`` (used as is) or a QDQ ONNX model from
`qanas.quant.export.export_qdq` (converted by `compiler.tflite.export_tflite`).
`estimate` runs the whole chain for one NPU target.
"""

from __future__ import annotations

from pathlib import Path

from compiler.errors import CompilerError, UnsupportedOpError
from compiler.npu.vela import VelaResult, run_vela
from targets import Target


def refuse_int4(model: str | Path) -> None:
    """Refuses a QDQ ONNX model with 4-bit weights: Vela compiles int8 (and int16)
    tensors only, so an Ethos-U target takes all-int8 models.

    Raises:
        UnsupportedOpError: naming the 4-bit weights and the fix.
    """
    from compiler.int4 import four_bit_initializers
    from compiler.onnx_file import read_onnx

    four_bit = four_bit_initializers(read_onnx(model))
    if four_bit:
        raise UnsupportedOpError(
            f"{model}: Ethos-U targets run int8 weights only (Vela has no int4), but "
            f"{len(four_bit)} weight(s) are 4-bit ({', '.join(repr(n) for n in four_bit[:3])}"
            f"{' ...' if len(four_bit) > 3 else ''}); search and export this target with "
            "8-bit weights only (--bits int8, the default), or pick a CPU target for int4")


def as_tflite(model: str | Path, work_dir: str | Path) -> Path:
    """`model` when it is a ``.tflite`` file, else its int8 TFLite export in `work_dir`.

    Raises:
        FileNotFoundError: `model` does not exist.
        CompilerError: `model` is neither a ``.tflite`` nor an ``.onnx`` file.
        UnsupportedOpError: the ONNX model has 4-bit weights (`refuse_int4`).
    """
    model = Path(model)
    if not model.is_file():
        raise FileNotFoundError(f"model {model} not found")
    if model.suffix == ".tflite":
        return model
    if model.suffix != ".onnx":
        raise CompilerError(f"{model}: an NPU target takes a QDQ .onnx model (qanas eval "
                            "--export) or an int8 .tflite; got a {model.suffix or 'no'} file")
    refuse_int4(model)
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
