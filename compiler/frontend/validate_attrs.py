"""Attribute and graph-structure checks (Conv, pooling, Gemm, required inputs).

Part of the checks `compiler.frontend.validate.check_model_values` runs before any
Relax is built; the quantization checks are in `validate.py`.
"""

from __future__ import annotations

import onnx

from compiler.errors import InvalidModelError, UnsupportedOpError
from compiler.frontend.facts import ModelFacts, node_attrs, node_name


def check_gemm(node: onnx.NodeProto, facts: ModelFacts) -> None:
    """Refuses a Gemm bias that is not one value per output (the importer broadcasts it so)."""
    if len(node.input) < 3 or not node.input[2]:
        return
    out = facts.shape(node.output[0])
    b_shape = facts.shape(node.input[2])
    if out is not None and b_shape is not None and b_shape not in ((out[-1],), (1, out[-1])):
        raise UnsupportedOpError(
            f"{node_name(node)}: the bias {node.input[2]!r} has shape {b_shape}; qanas "
            f"supports a bias of one value per output ({out[-1]},)")


def check_inputs_present(node: onnx.NodeProto, opset: int) -> None:
    """Refuses an empty input name where the op's schema requires a tensor."""
    try:
        schema = onnx.defs.get_schema(node.op_type, opset, node.domain)
    except onnx.defs.SchemaError:
        return  # the checker reports unknown ops
    formal = list(schema.inputs)
    optional = onnx.defs.OpSchema.FormalParameterOption.Optional
    for i, name in enumerate(node.input):
        param = formal[min(i, len(formal) - 1)] if formal else None
        if name == "" and param is not None and param.option != optional:
            raise InvalidModelError(
                f"{node_name(node)}: input {i} ({param.name}) is empty but required; connect "
                "it to a tensor")


def check_conv_attrs(node: onnx.NodeProto, facts: ModelFacts) -> None:
    """Conv: ``group >= 1`` dividing both channel counts, weight rank, bias shape, window."""
    where = node_name(node)
    a = node_attrs(node)
    group = int(a.get("group", 1))
    x_shape = facts.shapes.get(node.input[0])
    w_name = node.input[3] if node.op_type == "QLinearConv" else node.input[1]
    w_shape = facts.shapes.get(w_name)
    if w_shape is None:
        src = facts.dq_source(w_name)
        w_value = facts.consts.get(src.input[0] if src is not None else w_name)
        w_shape = None if w_value is None else tuple(w_value.shape)
    if group < 1:
        raise InvalidModelError(
            f"{where}: group={group}; group must be >= 1 (1 for a dense conv, the channel "
            "count for a depthwise one)")
    if w_shape is not None and x_shape is not None and len(w_shape) != len(x_shape):
        raise InvalidModelError(
            f"{where}: the weight {w_name!r} has rank {len(w_shape)} but the input has rank "
            f"{len(x_shape)}; a Conv weight is (out channels, in channels / group, kH, kW)")
    b_name = node.input[2] if node.op_type == "Conv" and len(node.input) > 2 else ""
    b_shape = facts.shape(b_name) if b_name else None
    if b_shape is not None and w_shape is not None and b_shape != (w_shape[0],):
        raise InvalidModelError(
            f"{where}: the bias {b_name!r} has shape {b_shape}; it must be 1-D with one value "
            f"per output channel ({w_shape[0]})")
    if x_shape is not None and len(x_shape) > 1 and x_shape[1] % group:
        raise InvalidModelError(
            f"{where}: group={group} does not divide the {x_shape[1]} input channels; group "
            "must divide both channel counts")
    if w_shape is not None and len(w_shape) > 1:
        if w_shape[0] % group:
            raise InvalidModelError(
                f"{where}: group={group} does not divide the {w_shape[0]} output channels; "
                "group must divide both channel counts")
        if x_shape is not None and len(x_shape) > 1 and w_shape[1] * group != x_shape[1]:
            raise InvalidModelError(
                f"{where}: the weight takes {w_shape[1]}x{group} input channels but the input "
                f"has {x_shape[1]}")
    check_window(node, a, None)


def check_window(node: onnx.NodeProto, a: dict, kernel) -> None:
    """Strides and dilations >= 1, pads >= 0 and (with a ``kernel``) smaller than it."""
    where = node_name(node)
    for key in ("strides", "dilations"):
        if any(int(v) < 1 for v in a.get(key, [])):
            raise InvalidModelError(f"{where}: {key}={list(a[key])}; every value must be >= 1")
    pads = [int(v) for v in a.get("pads", [])]
    if any(p < 0 for p in pads):
        raise InvalidModelError(f"{where}: pads={pads}; negative pads are not supported")
    if kernel is not None:
        if any(int(k) < 1 for k in kernel):
            raise InvalidModelError(f"{where}: kernel_shape={list(kernel)} must be >= 1")
        half = len(pads) // 2
        if half and any(p >= kernel[i % half] for i, p in enumerate(pads)
                        if i % half < len(kernel)):
            raise InvalidModelError(
                f"{where}: pads={pads} must be smaller than kernel_shape={list(kernel)}")


def check_pool(node: onnx.NodeProto, facts: ModelFacts) -> None:
    """AveragePool / MaxPool window attributes (see `check_window`)."""
    a = node_attrs(node)
    check_window(node, a, a.get("kernel_shape"))


__all__ = ["check_conv_attrs", "check_gemm", "check_inputs_present", "check_pool", "check_window"]
