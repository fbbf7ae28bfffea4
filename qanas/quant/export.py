"""ONNX QDQ export of a Brevitas fake-quant model, and its check against onnxruntime.

`export_qdq` writes the QCDQ form (QuantizeLinear / Clip / DequantizeLinear around
every quantized tensor) with opset 17, so that HardSwish stays one op. The
exporter computes the output size of every `F.interpolate` from `Shape` ops;
since our models have static shapes, those size computations are evaluated once
and replaced by constants, leaving the compiler a graph whose only Concat ops are
real tensor concats. Weights quantized to 4 bits (mixed precision) are stored as
ONNX INT4 initializers, which moves that model to opset 21
(`qanas.quant.int4_export`); an all-int8 model is unchanged by that step.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import torch
from torch import nn

from qanas.quant.errors import ExportError
from qanas.quant.int4_export import pack_int4_weights

__all__ = ["compare_with_onnx", "export_qdq", "float_compute_edges", "output_quant_params",
           "run_onnx"]

OPSET = 17


def export_qdq(qmodel: nn.Module, example: torch.Tensor, path: str | os.PathLike,
               opset: int = OPSET) -> Path:
    """Exports a calibrated fake-quant model to ONNX QCDQ at `path`.

    Args:
        qmodel: a `quantize_model` result, calibrated.
        example: an input batch of the deployment shape (e.g. `[1, 3, H, W]`).
        path: destination `.onnx` file (parent folders are created).
        opset: ONNX opset (>= 14 keeps HardSwish as one op).

    Returns:
        The path written.

    Raises:
        ExportError: if Brevitas's exporter or the constant folding fails.
    """
    import onnx
    from brevitas.export import export_onnx_qcdq

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    was_training = qmodel.training
    qmodel.eval()
    try:
        with torch.no_grad():
            # Int32 bias quantizers take the input scale cached by an eval forward pass;
            # calibration runs with quantization off, so one pass is needed before export.
            qmodel(example)
            with _int_check_tolerance(_BIAS_INT_ATOL):
                export_onnx_qcdq(qmodel, args=example, export_path=str(path), dynamo=False,
                                 opset_version=opset)
    except Exception as exc:  # noqa: BLE001 - the exporter raises many types
        raise ExportError(f"Brevitas QCDQ export to {path} failed: {exc}") from exc
    finally:
        qmodel.train(was_training)
    model = onnx.load(str(path))
    model = _fold_static_shapes(model, example.detach().cpu().numpy())
    onnx.checker.check_model(model)
    bad = float_compute_edges(model)
    if bad:
        raise ExportError(
            f"{path}: conv/linear outputs reach float ops unquantized (an integer-only compiler "
            f"cannot lower them): " + "; ".join(f"{p} -> {c} ({op})" for p, op, c in bad)
            + ". quantize_model requantizes convs feeding Sigmoid/Hardsigmoid/Hardswish; a "
            "model not built by it needs the same")
    model, _ = pack_int4_weights(model)  # 4-bit layers: INT4 initializers at opset 21
    onnx.save(model, str(path))
    return path


_COMPUTE_OPS = ("Conv", "Gemm", "MatMul")
_CLAMP_OPS = ("Relu", "Clip")


def float_compute_edges(model) -> list[tuple[str, str, str]]:
    """The graph edges where a Conv/Gemm/MatMul output is consumed as float.

    An integer-only lowering needs every Conv (Gemm, MatMul) output to be consumed
    only by QuantizeLinear, or by Relu/Clip whose output is consumed only by
    QuantizeLinear (a clamped requantization). Graph outputs count as float consumers.

    Args:
        model: an `onnx.ModelProto`, or a path to one.

    Returns:
        `(producer node, consumer op type, consumer node)` for every violation; empty if none.
    """
    import onnx

    if not isinstance(model, onnx.ModelProto):
        model = onnx.load(str(model))
    graph = model.graph
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}

    def only_quantized(name: str) -> bool:
        return name not in outputs and all(
            c.op_type == "QuantizeLinear" for c in consumers.get(name, []))

    bad = []
    for node in graph.node:
        if node.op_type not in _COMPUTE_OPS:
            continue
        out = node.output[0]
        if out in outputs:
            bad.append((node.name, "graph output", out))
        for user in consumers.get(out, []):
            if user.op_type == "QuantizeLinear":
                continue
            if user.op_type in _CLAMP_OPS and only_quantized(user.output[0]):
                continue
            bad.append((node.name, user.op_type, user.name))
    return bad


# Strictly above 0.5: Brevitas tests `max |x - round(x)| < atol`, and a code in
# [2^22, 2^23) comes back from `fl(fl(k * s) / s)` as exactly k +- 0.5 (see below).
_BIAS_INT_ATOL = 0.75


@contextlib.contextmanager
def _int_check_tolerance(atol: float):
    """Temporarily widens Brevitas's "is this QuantTensor integral" check for float32.

    An int bias is exported as `round(value / s)` where the fake-quant value is
    `fl(k * s)`, k the integer code; two float32 roundings put `value / s` within
    about `|k| * 2^-23` of k. Below 2^22 that is under 0.5 (the right integer); from
    2^23 on every float32 is an integer; in [2^22, 2^23) the float32 spacing is 0.5
    and the quotient can land exactly half-way, 0.5 from an integer, which Brevitas's
    default tolerance (0.2, compared with a strict `<`) rejects as "QuantTensor not
    valid". Whether it lands there depends on the calibrated scales to the last bit
    (e.g. on `torch.set_num_threads`, which changes reduction order). Half-way codes
    round to even, at most 1 bias LSB (`s`) from the fake-quant code: far below the
    float32 accumulation noise of onnxruntime's float Conv.

    The previous value is restored on exit, also on errors.
    """
    import brevitas.quant_tensor.base_quant_tensor as base

    saved = base.TOLERANCE[torch.float32]
    base.TOLERANCE[torch.float32] = max(saved, atol)
    try:
        yield
    finally:
        base.TOLERANCE[torch.float32] = saved


def _fold_static_shapes(model, example: np.ndarray):
    """Replaces computed Resize `scales`/`sizes` and Reshape `shape` inputs by constants and
    prunes dead nodes."""
    import onnx
    from onnx import numpy_helper

    graph = model.graph
    initialized = {init.name for init in graph.initializer}
    targets = []
    for node in graph.node:
        if node.op_type == "Resize":
            targets += [name for name in node.input[1:] if name and name not in initialized]
        elif node.op_type == "Reshape" and node.input[1] not in initialized:
            targets.append(node.input[1])  # attention reshapes computed from Shape ops
    if not targets:
        return model
    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    for name in dict.fromkeys(targets):
        probe.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    values = _session(probe.SerializeToString()).run(
        list(dict.fromkeys(targets)), {graph.input[0].name: example})
    for name, value in zip(dict.fromkeys(targets), values, strict=True):
        graph.initializer.append(numpy_helper.from_array(np.asarray(value), name=name))
    producers = {out: node for node in graph.node for out in node.output}
    for name in dict.fromkeys(targets):
        node = producers[name]
        node.output[list(node.output).index(name)] = f"{name}__folded_away"
    _prune_dead_nodes(graph)
    return model


def _prune_dead_nodes(graph) -> None:
    """Removes nodes none of whose outputs is consumed or a graph output."""
    while True:
        used = {name for node in graph.node for name in node.input}
        used |= {out.name for out in graph.output}
        dead = [node for node in graph.node if not any(o in used for o in node.output)]
        if not dead:
            break
        for node in dead:
            graph.node.remove(node)
    used = {name for node in graph.node for name in node.input}
    for init in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(init)


def _session(model_bytes_or_path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    # Graph rewrites could fuse QDQ pairs into integer kernels; we want the reference
    # semantics of each op, exactly as exported.
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model_bytes_or_path, options, providers=["CPUExecutionProvider"])


def run_onnx(path: str | os.PathLike, x: torch.Tensor | np.ndarray) -> np.ndarray:
    """Runs the ONNX model at `path` on `x` with onnxruntime (CPU, optimizations off).

    Exports have a static batch size (the compiler wants static shapes); a batch of
    another size is run in chunks of the exported one.
    """
    session = _session(str(path))
    array = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    array = array.astype(np.float32)
    inp = session.get_inputs()[0]
    batch = inp.shape[0] if isinstance(inp.shape[0], int) else array.shape[0]
    if array.shape[0] % batch:
        raise ExportError(f"{path} was exported for batches of {batch}; got {array.shape[0]}")
    chunks = [session.run(None, {inp.name: array[i:i + batch]})[0]
              for i in range(0, array.shape[0], batch)]
    return np.concatenate(chunks, axis=0)


def output_quant_params(path: str | os.PathLike) -> tuple[float, int]:
    """Scale and zero point of the graph output's final DequantizeLinear.

    Raises:
        ExportError: if the output is not produced by a per-tensor DequantizeLinear.
    """
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    consts = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            consts[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    out_name = model.graph.output[0].name
    producer = next((n for n in model.graph.node if out_name in n.output), None)
    if producer is None or producer.op_type != "DequantizeLinear":
        raise ExportError(f"the output of {path} is not quantized (produced by "
                          f"{producer.op_type if producer else 'nothing'}); quantize_model "
                          f"always adds an output quantizer, so this file is not its export")
    scale = np.asarray(consts[producer.input[1]])
    zero = np.asarray(consts[producer.input[2]]) if len(producer.input) > 2 else np.zeros(())
    if scale.size != 1:
        raise ExportError(f"the output of {path} has a per-channel scale; expected per tensor")
    return float(scale.reshape(())), int(zero.reshape(()))


def compare_with_onnx(qmodel: nn.Module, path: str | os.PathLike, x: torch.Tensor) -> dict:
    """Compares the Brevitas fake-quant output with onnxruntime on the exported model.

    Returns:
        dict with `max_abs_diff` (float units), `max_int_diff` (output quantization
        steps), `equal_share` (fraction of exactly equal integer outputs), `scale`
        and `zero_point` of the output.
    """
    was_training = qmodel.training
    qmodel.eval()
    with torch.no_grad():
        fake = qmodel(x)
    qmodel.train(was_training)
    fake = (fake.value if hasattr(fake, "value") else fake).detach().cpu().numpy()
    ort_out = run_onnx(path, x)
    if ort_out.shape != fake.shape:
        raise ExportError(f"onnxruntime output shape {ort_out.shape} differs from the "
                          f"fake-quant output shape {fake.shape}")
    scale, zero = output_quant_params(path)
    q_fake = np.rint(fake / scale) + zero
    q_ort = np.rint(ort_out / scale) + zero
    int_diff = np.abs(q_fake - q_ort)
    return {
        "max_abs_diff": float(np.abs(fake - ort_out).max()),
        "max_int_diff": int(int_diff.max()),
        "equal_share": float((int_diff == 0).mean()),
        "scale": scale,
        "zero_point": zero,
    }
