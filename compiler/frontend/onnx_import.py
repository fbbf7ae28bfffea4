"""ONNX (float or QDQ int8) → Relax, built op by op from the support table.

We write this small importer instead of calling `tvm.relax.frontend.onnx.from_onnx`
because that one lowers Clip, Relu-with-bounds and several other ops through
`emit_te` into opaque `call_tir` functions, which hides exactly the
``dequantize → op → quantize`` patterns the integer-lowering passes rewrite. Here
every ONNX node becomes high-level Relax ops (`R.quantize`, `R.nn.conv2d`,
`R.clip`, ...), constant subgraphs are folded with ONNX's reference evaluator,
and dequantized weights stay ``R.dequantize(int8 constant)`` so the passes can
see them.
"""

from __future__ import annotations

import re

import numpy as np
import onnx
from onnx import helper, numpy_helper
from onnx.reference import ReferenceEvaluator
from tvm import relax

from compiler import known_types
from compiler.errors import CompilerError, CompilerStageError, InvalidModelError
from compiler.frontend import onnx_ops
from compiler.frontend.dq_const import DQConst, relax_const
from compiler.frontend.model import ImportedModel, TensorInfo
from compiler.frontend.support import GraphFacts, check_node
from compiler.frontend.validate import check_model_values, check_versions
from compiler.int4 import as_int8, int4_weight_digests

#: Ops that carry quantization; a model with any of them is "quantized".
QUANT_OPS = frozenset({"QuantizeLinear", "DequantizeLinear", "QLinearConv", "ConvInteger"})
#: Never folded even with constant inputs: the passes need to see dequantized weights.
_KEEP_LAZY = frozenset({"DequantizeLinear"})


def one_line(text: object, limit: int = 300) -> str:
    """``text`` on one line (whitespace runs collapsed), cut to ``limit`` characters."""
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _checked(model: onnx.ModelProto) -> onnx.ModelProto:
    check_versions(model)
    try:
        onnx.checker.check_model(model)
        return onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True,
                                                 data_prop=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as err:
        raise InvalidModelError(
            f"the ONNX model failed onnx.checker / shape inference: {one_line(err)}. "
            "Fix the node it names, or re-export with a supported opset and static "
            "shapes") from err


def _static_shape(vi: onnx.ValueInfoProto) -> tuple[int, ...] | None:
    tt = vi.type.tensor_type
    if not tt.HasField("shape"):
        return None
    dims = []
    for d in tt.shape.dim:
        if not d.HasField("dim_value"):
            return None
        dims.append(d.dim_value)
    return tuple(dims)


def _var_name(name: str) -> str:
    return re.sub(r"\W", "_", name, flags=re.ASCII) or "input"  # ASCII: it names C locals


class _Context:
    """The state of one import: values by ONNX tensor name and the block builder."""

    def __init__(self, bb: relax.BlockBuilder, shapes, opset: int):
        self.bb = bb
        self.env: dict[str, object] = {}
        self.shapes = shapes
        self.opset = opset

    def value(self, name: str) -> np.ndarray:
        """The numpy value of constant tensor ``name``."""
        v = self.env[name]
        if not isinstance(v, np.ndarray):
            raise InvalidModelError(f"tensor {name!r} must be a constant")
        return v

    def is_const(self, name: str) -> bool:
        """True when ``name`` is an omitted input or a folded constant."""
        return name == "" or isinstance(self.env.get(name), np.ndarray)

    def raw(self, name: str) -> object:
        """The stored value: a Relax expression, a numpy constant or a `DQConst`."""
        return self.env[name]

    def expr(self, name: str) -> relax.Expr:
        """Tensor ``name`` as a Relax expression (constants become ``R.const``)."""
        v = self.env[name]
        if isinstance(v, np.ndarray):
            return relax_const(v)
        if isinstance(v, DQConst):
            return self.emit(v.expr())
        return v

    def emit(self, expr: relax.Expr) -> relax.Var:
        """Emits ``expr`` into the dataflow block."""
        return known_types.emit(self.bb, expr)


def _fold(node: onnx.NodeProto, consts: dict[str, np.ndarray], shapes,
          opset: int) -> list[np.ndarray]:
    if node.op_type == "Shape" and node.input[0] not in consts:
        full = np.array(shapes[node.input[0]], dtype=np.int64)
        start = next((a.i for a in node.attribute if a.name == "start"), 0)
        end = next((a.i for a in node.attribute if a.name == "end"), len(full))
        return [full[start:end]]
    feeds = {n: consts[n] for n in node.input if n}
    ref = ReferenceEvaluator(node, opsets={"": opset})
    return [np.asarray(v) for v in ref.run(None, feeds)]


def fold_constants(model: onnx.ModelProto, shapes, opset: int) -> dict[str, np.ndarray]:
    """Tensor name → value of every initializer and constant-foldable node output.

    ``DequantizeLinear`` is never folded (the passes must see dequantized weights).
    A fold that fails (a node ONNX's reference evaluator cannot compute on these
    values) raises `InvalidModelError` naming the node.
    """
    consts = {init.name: as_int8(numpy_helper.to_array(init))  # INT4: int8 values
              for init in model.graph.initializer}
    names = set(consts)
    for node in model.graph.node:
        if not _foldable(node, names, shapes):
            continue
        try:
            outs = _fold(node, consts, shapes, opset)
        except CompilerError:
            raise
        except Exception as err:
            raise InvalidModelError(
                f"cannot evaluate the constant node {node.op_type} "
                f"({node.name or '<unnamed>'!r}): {type(err).__name__}: {one_line(err, 160)}; "
                "fix its inputs or attributes") from err
        for name, value in zip(node.output, outs, strict=False):
            if name:
                consts[name] = value
                names.add(name)
    return consts


def _foldable(node: onnx.NodeProto, consts: set[str], shapes) -> bool:
    if node.op_type in _KEEP_LAZY or node.domain not in ("", "ai.onnx"):
        return False
    if node.op_type == "Shape":
        return node.input[0] in consts or node.input[0] in shapes
    return all(n == "" or n in consts for n in node.input)


def check_onnx(model: onnx.ModelProto) -> onnx.ModelProto:
    """Checks ``model`` (checker, shape inference, static input shapes, support table).

    Returns the shape-inferred model. Raises `InvalidModelError` or `UnsupportedOpError`
    before anything is built.
    """
    model = _checked(model)
    graph = model.graph
    shapes = {}
    for vi in list(graph.input) + list(graph.value_info) + list(graph.output):
        shape = _static_shape(vi)
        if shape is not None:
            shapes[vi.name] = shape
    consts = {init.name for init in graph.initializer}
    for inp in graph.input:
        if inp.name not in consts and inp.name not in shapes:
            raise InvalidModelError(
                f"graph input {inp.name!r} has no static shape; export the model with fixed "
                "input shapes (no dynamic axes)")
    lazy: set[str] = set()  # DequantizeLinear of a constant: known, but kept symbolic
    for node in graph.node:
        if _foldable(node, consts, shapes):
            consts.update(o for o in node.output if o)
            continue
        check_node(node, GraphFacts(frozenset(consts | lazy), shapes))
        if node.op_type in _KEEP_LAZY and node.input[0] in consts:
            lazy.add(node.output[0])
    return model


def _convert(node: onnx.NodeProto, ctx: _Context, source: str) -> list[object]:
    try:
        return onnx_ops.convert(node, ctx)
    except CompilerError:
        raise
    except Exception as err:
        raise CompilerStageError(
            f"import of {node.op_type} (node {node.name or '<unnamed>'!r}) of {source} failed "
            f"with {type(err).__name__}: {one_line(err, 160)}. The model passed qanas' checks, "
            "so this is a qanas bug: please report it with the model "
            "(QANAS_TRACEBACK=1 shows the cause)") from err


def import_onnx(model: onnx.ModelProto, source: str) -> ImportedModel:
    """Imports a checked ONNX model into Relax.

    First `check_onnx` (versions, checker, shape inference, support table), then the
    constants are folded and `compiler.frontend.validate.check_model_values` checks
    scales, zero points, axes, biases and attributes; only then is Relax built. An
    unexpected library error while building a node becomes a `CompilerStageError`
    naming the node (the original is its ``__cause__``).
    """
    model = check_onnx(model)
    graph = model.graph
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 13)
    shapes = {}
    dtypes = {}
    for vi in list(graph.input) + list(graph.value_info) + list(graph.output):
        shape = _static_shape(vi)
        if shape is not None:
            shapes[vi.name] = shape
        dtypes[vi.name] = str(helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type))
    consts = fold_constants(model, shapes, opset)
    check_model_values(model, consts, shapes)
    bb = relax.BlockBuilder()
    ctx = _Context(bb, shapes, opset)
    for init in graph.initializer:
        ctx.env[init.name] = consts[init.name]
    params, inputs = [], []
    for inp in graph.input:
        if inp.name in ctx.env:
            continue
        var = relax.Var(_var_name(inp.name), relax.TensorType(shapes[inp.name], dtypes[inp.name]))
        params.append(var)
        ctx.env[inp.name] = var
        inputs.append(TensorInfo(inp.name, shapes[inp.name], dtypes[inp.name]))
    const_names = {init.name for init in graph.initializer}
    with bb.function("main", params):
        with bb.dataflow():
            for node in graph.node:
                if _foldable(node, const_names, shapes):
                    outs = [consts.get(o) for o in node.output]
                    const_names.update(node.output)
                else:
                    outs = _convert(node, ctx, source)
                for name, value in zip(node.output, outs, strict=False):
                    if name:
                        ctx.env[name] = value
            results = [ctx.expr(o.name) for o in graph.output]
            out = bb.emit_output(results[0] if len(results) == 1 else relax.Tuple(results))
        bb.emit_func_output(out)
    mod = relax.transform.Normalize()(bb.get())
    outputs = tuple(TensorInfo(o.name, shapes[o.name], dtypes[o.name]) for o in graph.output)
    quantized = any(n.op_type in QUANT_OPS for n in graph.node)
    return ImportedModel(mod=mod, inputs=tuple(inputs), outputs=outputs, quantized=quantized,
                         source=source, int4_weights=int4_weight_digests(model, consts))


__all__ = ["DQConst", "QUANT_OPS", "check_onnx", "import_onnx"]
