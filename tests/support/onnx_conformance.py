"""ONNX's own backend node test cases, bound the way a deployment model holds them.

`onnx.backend.test.case.node.collect_testcases()` ships, inside the `onnx` package, one
small model per operator behaviour with its inputs and the outputs the specification
gives. A deployment compiler sees weights, biases, bounds, scales, zero points and sizes
as constants, so `bind_case` turns those inputs into initializers and leaves the data
inputs as graph inputs.

The Resize cases qanas supports (`SUPPORTED`) are merged into one model per variant
(`_merged`), float or int8 QDQ (`_int8_variant`); the resize conformance and the
build-cache tests share them.
"""

from __future__ import annotations

import functools
import warnings
from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

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


#: ONNX Resize cases the support table accepts: each must compile and match the spec.
SUPPORTED = (
    "test_resize_downsample_scales_linear",
    "test_resize_downsample_scales_linear_align_corners",
    "test_resize_downsample_scales_linear_half_pixel_symmetric",
    "test_resize_downsample_scales_nearest",
    "test_resize_downsample_sizes_linear_pytorch_half_pixel",
    "test_resize_downsample_sizes_nearest",
    "test_resize_upsample_scales_linear",
    "test_resize_upsample_scales_linear_align_corners",
    "test_resize_upsample_scales_linear_half_pixel_symmetric",
    "test_resize_upsample_scales_nearest",
    "test_resize_upsample_scales_nearest_axes_2_3",
    "test_resize_upsample_scales_nearest_axes_3_2",
    "test_resize_upsample_sizes_nearest",
    "test_resize_upsample_sizes_nearest_axes_2_3",
    "test_resize_upsample_sizes_nearest_axes_3_2",
    "test_resize_upsample_sizes_nearest_ceil_half_pixel",
    "test_resize_upsample_sizes_nearest_floor_align_corners",
    "test_resize_upsample_sizes_nearest_round_prefer_ceil_asymmetric",
)


X_SCALE, X_ZP, Y_SCALE, Y_ZP = 0.07, 5, 0.05, -3


def _prefixed(case, prefix: str):
    """The case's nodes, initializers, inputs and outputs with every name prefixed."""
    graph = case.model.graph

    def rename(name: str) -> str:
        return prefix + name if name else name

    nodes = []
    for node in graph.node:
        new = onnx.NodeProto()
        new.CopyFrom(node)
        new.input[:] = [rename(n) for n in node.input]
        new.output[:] = [rename(n) for n in node.output]
        nodes.append(new)
    inits = []
    for init in graph.initializer:
        new = onnx.TensorProto()
        new.CopyFrom(init)
        new.name = rename(init.name)
        inits.append(new)
    return nodes, inits, rename


def _merged(names, variant) -> tuple[onnx.ModelProto, dict, dict]:
    """One model holding ``variant(case, prefix)`` for every case: (model, feeds, expected)."""
    nodes, inits, inputs, outputs, feeds, expected = [], [], [], [], {}, {}
    for i, name in enumerate(names):
        part = variant(bind_case(name), f"c{i}_")
        nodes += part["nodes"]
        inits += part["inits"]
        inputs += part["inputs"]
        outputs += part["outputs"]
        feeds.update(part["feeds"])
        expected.update(part["expected"])
    graph = helper.make_graph(nodes, "resize_cases", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])
    model.ir_version = 9
    return onnx.shape_inference.infer_shapes(model), feeds, expected


def _int8_variant(case, prefix):
    """``X → Q → DQ → Resize → Q → DQ → Y`` with the case's parameters; feeds are int8."""
    nodes, inits, rename = _prefixed(case, prefix)
    (x_name,) = case.feeds
    x, y = rename(x_name), rename(case.model.graph.output[0].name)
    consts = {f"{prefix}xs": np.float32(X_SCALE), f"{prefix}xz": np.int8(X_ZP),
              f"{prefix}ys": np.float32(Y_SCALE), f"{prefix}yz": np.int8(Y_ZP)}
    inits += [numpy_helper.from_array(np.asarray(v), k) for k, v in consts.items()]
    resize = nodes[0]
    resize.input[0] = x + "_dq"
    resize.output[0] = y + "_f"
    nodes = [helper.make_node("QuantizeLinear", [x, f"{prefix}xs", f"{prefix}xz"], [x + "_q"]),
             helper.make_node("DequantizeLinear", [x + "_q", f"{prefix}xs", f"{prefix}xz"],
                              [x + "_dq"]),
             resize,
             helper.make_node("QuantizeLinear", [y + "_f", f"{prefix}ys", f"{prefix}yz"],
                              [y + "_q"]),
             helper.make_node("DequantizeLinear", [y + "_q", f"{prefix}ys", f"{prefix}yz"], [y])]
    shape = list(case.feeds[x_name].shape)
    rng = np.random.default_rng(len(prefix) + sum(shape))
    return {"nodes": nodes, "inits": inits,
            "inputs": [helper.make_tensor_value_info(x, TensorProto.FLOAT, shape)],
            "outputs": [helper.make_tensor_value_info(y, TensorProto.FLOAT, None)],
            "feeds": {x: rng.integers(-128, 128, shape).astype(np.int8)},
            "expected": {y: case.name}}
