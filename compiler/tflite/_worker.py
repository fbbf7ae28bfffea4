"""Runs a .tflite model in one interpreter, in its own process (see `compiler.tflite.verify`).

``python -m compiler.tflite._worker {tflm,litert,litert-xnnpack} jobs.json``, where ``jobs.json`` lists
``[model.tflite, inputs.npz, outputs.npz]`` triples run one after the other.

TFLite Micro aborts the whole process on bad quantization parameters or unsupported
ops, so the interpreters never run in the caller's process. Inputs and outputs are
NumPy archives keyed ``in0, in1, ...`` / ``out0, ...`` in the model's order, in the
interpreter's layout (NHWC).
"""

from __future__ import annotations

import json
import sys

import numpy as np

#: Arena beyond the model size for TFLite Micro (activations of 64×64 subnets fit easily).
_ARENA_EXTRA = 32 << 20


def run_tflm(model: bytes, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Runs ``model`` in the TFLite Micro Python interpreter (inputs/outputs in model order)."""
    from tflite_micro.python.tflite_micro import runtime

    it = runtime.Interpreter.from_bytes(model, arena_size=len(model) + _ARENA_EXTRA)
    for i, x in enumerate(inputs):
        it.set_input(x, i)
    it.invoke()
    outs = []
    while True:
        try:
            it.get_output_details(len(outs))
        except IndexError:
            return outs
        outs.append(np.array(it.get_output(len(outs))))


def run_litert(model: bytes, inputs: list[np.ndarray], *,
               reference: bool = True) -> list[np.ndarray]:
    """Runs ``model`` in LiteRT (model order): reference kernels, or its default CPU path.

    The default path (``reference=False``) applies the XNNPACK delegate and optimized
    kernels, which requantize in float32 with one rounding instead of TFLite's two.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    resolver = OpResolverType.BUILTIN_REF if reference else OpResolverType.AUTO
    it = Interpreter(model_content=model, num_threads=1,
                     experimental_op_resolver_type=resolver)
    it.allocate_tensors()
    for d, x in zip(it.get_input_details(), inputs, strict=True):
        it.set_tensor(d["index"], x)
    it.invoke()
    return [np.array(it.get_tensor(d["index"])) for d in it.get_output_details()]


RUNNERS = {"tflm": run_tflm, "litert": run_litert,
           "litert-xnnpack": lambda model, inputs: run_litert(model, inputs, reference=False)}


def main(argv: list[str]) -> int:
    """Entry point: ``BACKEND jobs.json``; exits non-zero on the first failing job."""
    backend, jobs_path = argv
    with open(jobs_path) as f:
        jobs = json.load(f)
    for model_path, in_path, out_path in jobs:
        with open(model_path, "rb") as f:
            model = f.read()
        with np.load(in_path) as z:
            inputs = [z[f"in{i}"] for i in range(len(z.files))]
        try:
            outputs = RUNNERS[backend](model, inputs)
        except Exception as err:  # the caller reports which model failed and why
            print(f"{model_path}: {type(err).__name__}: {err}", file=sys.stderr)
            return 1
        np.savez(out_path, **{f"out{i}": y for i, y in enumerate(outputs)})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
