"""ONNX's own backend node test cases, bound the way a deployment model holds them.

`onnx.backend.test.case.node.collect_testcases()` ships, inside the `onnx` package, one
small model per operator behaviour with its inputs and the outputs the specification
gives. A deployment compiler sees weights, biases, bounds, scales, zero points and sizes
as constants, so `bind_case` turns those inputs into initializers and leaves the data
inputs as graph inputs.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import numpy_helper

from compiler.frontend.support import SUPPORTED_OPS

# Per op type: the input positions a deployment model holds as constants.
PARAMETER_INPUTS: dict[str, frozenset[int]] = {
    "Conv": frozenset({1, 2}),
    "QLinearConv": frozenset(range(1, 9)),
    "ConvInteger": frozenset({1, 2, 3}),
    "Gemm": frozenset({1, 2}),
    "MatMul": frozenset({1}),
    "Clip": frozenset({1, 2}),
    "Resize": frozenset({1, 2, 3}),
    "Reshape": frozenset({1}),
    "QuantizeLinear": frozenset({1, 2}),
    "DequantizeLinear": frozenset({1, 2}),
    "BatchNormalization": frozenset({1, 2, 3, 4}),
}

FLOAT_RTOL = 1e-4
FLOAT_ATOL = 1e-5
"""Float outputs must satisfy ``|ours − spec| ≤ FLOAT_ATOL + FLOAT_RTOL·|spec|``
(float32 arithmetic in another order, libm's expf); integer outputs must be equal."""


@dataclass(frozen=True)
class BoundCase:
    """One conformance case: the model with parameters bound, its feeds and expectations."""

    name: str
    op_types: frozenset[str]
    model: onnx.ModelProto
    feeds: dict[str, np.ndarray]
    expected: dict[str, np.ndarray]


@functools.cache
def _all_cases() -> tuple:
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        return tuple(collect_testcases())


@functools.cache
def conformance_cases() -> dict[str, object]:
    """Case name → ONNX TestCase, for every case whose operators are all in the table."""
    supported = set(SUPPORTED_OPS)
    out = {}
    for case in _all_cases():
        ops = {node.op_type for node in case.model.graph.node}
        if ops and ops <= supported and case.data_sets:
            out[case.name] = case
    return dict(sorted(out.items()))


def bind_case(name: str) -> BoundCase:
    """The case ``name`` with its parameter inputs turned into initializers."""
    case = conformance_cases()[name]
    model = onnx.ModelProto()
    model.CopyFrom(case.model)
    graph = model.graph
    inputs, outputs = case.data_sets[0]
    graph_inputs = [i.name for i in graph.input]
    constant = {tensor for node in graph.node
                for i, tensor in enumerate(node.input)
                if i in PARAMETER_INPUTS.get(node.op_type, ()) and tensor in graph_inputs}
    data = []
    for value_info, array in zip(list(graph.input), map(_as_array, inputs), strict=False):
        if value_info.name in constant:
            graph.initializer.append(numpy_helper.from_array(array, value_info.name))
        else:
            data.append((value_info, array))
    del graph.input[:]
    graph.input.extend(v for v, _ in data)
    _restamp_opset(model)
    return BoundCase(
        name=name,
        op_types=frozenset(n.op_type for n in graph.node),
        model=model,
        feeds={v.name: a for v, a in data},
        expected={o.name: _as_array(a) for o, a in zip(graph.output, outputs, strict=True)})


def _restamp_opset(model: onnx.ModelProto) -> None:
    """Lowers a case's opset newer than qanas accepts to `MAX_OPSET` when every operator in
    it has the same definition at both (the same ``since_version``), so the case tests the
    operator, not the opset number. Otherwise the case keeps its opset and is refused."""
    from compiler.frontend.validate import MAX_OPSET

    for opset in model.opset_import:
        if opset.domain not in ("", "ai.onnx") or opset.version <= MAX_OPSET:
            continue
        same = all(
            onnx.defs.get_schema(node.op_type, MAX_OPSET).since_version
            == onnx.defs.get_schema(node.op_type, opset.version).since_version
            for node in model.graph.node)
        if same:
            opset.version = MAX_OPSET


def _as_array(value) -> np.ndarray:
    if isinstance(value, onnx.TensorProto):
        return numpy_helper.to_array(value)
    return np.asarray(value)


def mismatch(got: np.ndarray, expected: np.ndarray) -> str | None:
    """Why ``got`` is not the specified output, or None when it is."""
    if got.shape != expected.shape:
        return f"shape {got.shape}, the specification gives {expected.shape}"
    if np.issubdtype(expected.dtype, np.integer) or expected.dtype == bool:
        wrong = got.astype(np.int64) != expected.astype(np.int64)
        if wrong.any():
            return (f"{int(wrong.sum())} of {wrong.size} integers differ, e.g. "
                    f"{got.reshape(-1)[wrong.reshape(-1)][:4]} vs "
                    f"{expected.reshape(-1)[wrong.reshape(-1)][:4]}")
        return None
    exp = expected.astype(np.float64)
    err = np.abs(got.astype(np.float64) - exp)
    bad = ~(err <= FLOAT_ATOL + FLOAT_RTOL * np.abs(exp))
    if bad.any():
        return (f"{int(bad.sum())} of {bad.size} values off, max error {float(err.max()):.4g}: "
                f"ours {got.reshape(-1)[:4]} vs spec {expected.reshape(-1)[:4]}")
    return None
