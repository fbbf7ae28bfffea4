"""Checks an exported .tflite against the NumPy int8 reference in TFLite Micro and LiteRT.

`verify_tflite` feeds the same int8 inputs to `compiler.reference.run_int8_reference`
(bit-identical to the compiled host C) and to each interpreter, each run in a
subprocess (`compiler.tflite._worker`: TFLite Micro aborts the process on bad
quantization parameters), and reports per output the share of bit-exact elements
and the largest difference in LSB. TFLite requantizes with a double rounding
(``SaturatingRoundingDoublingHighMul`` then a rounding shift) where our arithmetic
rounds once, half to even, so single elements may differ by 1 LSB per layer.

Run it from the shell (`compiler.tflite.verify_cli`)::

    python -m compiler.tflite.verify model.onnx model.tflite [--seed 0] [--layers]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from compiler import int8
from compiler.errors import CompilerError
from compiler.onnx_file import read_onnx
from compiler.reference import boundary, run_int8_reference

#: The interpreters `verify_tflite` runs by default: TFLite Micro and LiteRT's reference
#: kernels (TFLite's integer arithmetic, which Ethos-U implements too).
BACKENDS = ("tflm", "litert")
#: Every interpreter: also LiteRT's default CPU path (XNNPACK, float32 requantization).
ALL_BACKENDS = (*BACKENDS, "litert-xnnpack")
_TIMEOUT_S = 600


class InterpreterError(CompilerError, RuntimeError):
    """A TFLite interpreter rejected or crashed on an exported model."""


@dataclass(frozen=True)
class Agreement:
    """One output of one interpreter compared with the NumPy int8 reference."""

    backend: str
    output: str
    elements: int
    exact: float
    max_lsb: int


@dataclass(frozen=True)
class VerifyReport:
    """All outputs of all interpreters; ``exact`` / ``max_lsb`` are the worst over them."""

    agreements: tuple[Agreement, ...]

    def worst(self, backend: str | None = None) -> tuple[float, int]:
        """``(lowest exact share, largest |diff| in LSB)``, over one backend or all."""
        rows = [a for a in self.agreements if backend in (None, a.backend)]
        return min(a.exact for a in rows), max(a.max_lsb for a in rows)

    def to_dict(self) -> dict:
        """A JSON-ready dict."""
        return {"agreements": [asdict(a) for a in self.agreements]}


def _nhwc(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if x.ndim == 4 else x


def _nchw(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)) if x.ndim == 4 else x


def run_interpreter(backend: str, tflite_path: str | Path,
                    inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Runs a .tflite in ``backend`` (one of `ALL_BACKENDS`) in a subprocess; NHWC in and out.

    Raises:
        ValueError: an unknown backend (the message lists them).
        InterpreterError: the interpreter failed or aborted; the message has its stderr.
    """
    return run_many(backend, [(tflite_path, inputs)])[0]


def run_many(backend: str, jobs) -> list[list[np.ndarray]]:
    """Runs several ``(tflite_path, inputs)`` in one ``backend`` subprocess, in order."""
    if backend not in ALL_BACKENDS:
        raise ValueError(f"unknown TFLite backend {backend!r}; choose one of {ALL_BACKENDS}")
    with tempfile.TemporaryDirectory(prefix="qanas-tflite-") as tmp:
        manifest = []
        for k, (path, inputs) in enumerate(jobs):
            src, dst = Path(tmp) / f"in{k}.npz", Path(tmp) / f"out{k}.npz"
            np.savez(src, **{f"in{i}": x for i, x in enumerate(inputs)})
            manifest.append([str(path), str(src), str(dst)])
        (Path(tmp) / "jobs.json").write_text(json.dumps(manifest))
        cmd = [sys.executable, "-m", "compiler.tflite._worker", backend,
               str(Path(tmp) / "jobs.json")]
        root = Path(__file__).resolve().parents[2]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=_TIMEOUT_S, cwd=root)
        if proc.returncode != 0:
            raise InterpreterError(
                f"{backend} failed (exit {proc.returncode}; a negative code is a crash such as "
                f"TFLite Micro aborting on bad parameters):\n{proc.stderr.strip()[-4000:]}")
        results = []
        for _, _, dst in manifest:
            with np.load(dst) as z:
                results.append([z[f"out{i}"] for i in range(len(z.files))])
        return results


def reference_inputs(model, seed: int = 0) -> dict[str, np.ndarray]:
    """Int8 inputs (NCHW): standard normal quantized with each input's scale and zero point."""
    rng = np.random.default_rng(seed)
    return {t.name: int8.quantize(rng.standard_normal(t.shape).astype(np.float32), t.scale,
                                  t.zero_point).astype(np.int8)
            for t in boundary(model).inputs}


def compare(ours: np.ndarray, theirs: np.ndarray) -> tuple[float, int]:
    """``(share of equal elements, max |difference|)`` of two int8 arrays of one shape."""
    if ours.shape != theirs.shape:
        raise AssertionError(f"shape mismatch {ours.shape} vs {theirs.shape}")
    diff = np.abs(ours.astype(np.int32) - theirs.astype(np.int32))
    return float((diff == 0).mean()), int(diff.max(initial=0))


def verify_tflite(model, tflite_path: str | Path, *, inputs: dict[str, np.ndarray] | None = None,
                  seed: int = 0, backends=BACKENDS) -> VerifyReport:
    """Runs ``tflite_path`` in each backend and compares it with the NumPy int8 reference.

    Args:
        model: the QDQ ONNX model (path or ModelProto) the .tflite was exported from.
        tflite_path: the exported flatbuffer.
        inputs: int8 NCHW inputs by ONNX input name (default: `reference_inputs(seed)`).
        seed: seed of the default inputs.
        backends: interpreters to run, from `ALL_BACKENDS`.

    Returns:
        A `VerifyReport` with one `Agreement` per backend and output.

    Example:
        >>> report = verify_tflite("net.onnx", "net.tflite")  # doctest: +SKIP
        >>> report.worst("tflm")  # doctest: +SKIP
        (0.998, 1)
    """
    feeds = inputs if inputs is not None else reference_inputs(model, seed)
    return verify_many([(model, tflite_path, feeds)], backends=backends)[0]


def verify_many(cases, *, backends=BACKENDS) -> list[VerifyReport]:
    """`verify_tflite` for several ``(model, tflite_path, inputs)``, one subprocess per backend.

    ``inputs`` may be None for `reference_inputs` with seed 0.
    """
    specs, expected, jobs = [], [], []
    for model, path, feeds in cases:
        spec = boundary(model)
        feeds = feeds if feeds is not None else reference_inputs(model)
        specs.append(spec)
        expected.append(run_int8_reference(model, feeds))
        jobs.append((path, [_nhwc(feeds[t.name]) for t in spec.inputs]))
    rows: list[list[Agreement]] = [[] for _ in cases]
    for backend in backends:
        for k, got in enumerate(run_many(backend, jobs)):
            if len(got) != len(specs[k].outputs):
                raise InterpreterError(f"{backend} returned {len(got)} outputs, "
                                       f"{jobs[k][0]} has {len(specs[k].outputs)}")
            for t, y in zip(specs[k].outputs, got, strict=True):
                ref = expected[k][t.name]
                exact, lsb = compare(ref, _nchw(y))
                rows[k].append(Agreement(backend, t.name, int(ref.size), exact, lsb))
    return [VerifyReport(tuple(r)) for r in rows]


def input_sensitivity(model, *, share: float = 0.002, seed: int = 0) -> tuple[float, int]:
    """How far the reference's own outputs move when ``share`` of the inputs move by 1 LSB.

    The scale against which to read end-to-end agreement: if the NumPy reference
    itself changes by many LSB when a few input elements change by one (as in
    untrained subnets whose maps shrink to 1×1), then 1-LSB rounding differences in
    early layers do the same to any other int8 implementation.

    Returns:
        ``(share of output elements unchanged, max |change| in LSB)`` over all outputs.
    """
    feeds = reference_inputs(model, seed)
    rng = np.random.default_rng(seed + 1)
    moved = {}
    for name, x in feeds.items():
        mask = rng.random(x.shape) < share
        step = np.where(rng.random(x.shape) < 0.5, -1, 1) * mask
        moved[name] = np.clip(x.astype(np.int16) + step, -128, 127).astype(np.int8)
    a, b = run_int8_reference(model, feeds), run_int8_reference(model, moved)
    stats = [compare(a[k], b[k]) for k in a]
    return min(s[0] for s in stats), max(s[1] for s in stats)


def with_intermediate_outputs(model) -> onnx.ModelProto:
    """A copy of a QDQ model whose every activation QuantizeLinear is also a graph output.

    Each added output is a DequantizeLinear of the QuantizeLinear (same scale and zero
    point), so the reference and the export both return the int8 tensor of every
    layer: `verify_tflite` on it shows where a difference starts.
    """
    model = read_onnx(model) if isinstance(model, (str, Path)) else model
    model = onnx.ModelProto.FromString(model.SerializeToString())
    g = model.graph
    consts = {i.name for i in g.initializer}
    consts |= {o for n in g.node if n.op_type == "Constant" for o in n.output}
    outputs = {o.name for o in g.output}
    graph_inputs = {i.name for i in g.input} - consts
    for n in list(g.node):
        if n.op_type != "QuantizeLinear" or n.input[0] in consts or n.input[0] in graph_inputs:
            continue
        if n.output[0] in outputs or _folds_to_constant(n, g, consts):
            continue
        name = f"{n.output[0]}/layer"
        g.node.append(helper.make_node("DequantizeLinear", [n.output[0], *n.input[1:]], [name],
                                       name=f"{n.name}/layer_dq"))
        g.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    return model


def _folds_to_constant(node, graph, consts) -> bool:
    producer = {o: n for n in graph.node for o in n.output}
    stack, seen = [node.input[0]], set()
    while stack:
        name = stack.pop()
        if name in seen or name in consts:
            continue
        seen.add(name)
        p = producer.get(name)
        if p is None:
            return False
        stack.extend(i for i in p.input if i)
    return True


if __name__ == "__main__":  # the command lives above `layers`, which imports this module
    import runpy

    runpy.run_module("compiler.tflite.verify_cli", run_name="__main__")
