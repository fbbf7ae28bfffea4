"""Checks of a model's versions, quantization parameters and attributes, before lowering.

The integer-lowering passes and the kernels trust what they read: a scale is a
positive float, an activation is int8 or uint8, an int32 bias sits at the
accumulator's scale, a weight is symmetric. A model that breaks one of these would
otherwise compile (exit 0) and compute something else, or fail deep in TVM with an
IR dump. So the frontend checks them here, after ``onnx.checker`` and shape
inference and before any Relax is built, and refuses a bad model with an
`InvalidModelError` (the model is wrong) or an `UnsupportedOpError` (valid ONNX that
qanas does not compile yet) naming the node, the tensor and the fix.

The limits and why:

* opsets `MIN_OPSET`..`MAX_OPSET`: ``QuantizeLinear`` exists from opset 10; the newest
  is the newest for which onnxruntime implements every supported op (it loads opset 28
  but has no ``QuantizeLinear``-28 kernel; a test checks both ends).
* every required input present (an empty name where the op's schema needs a tensor).
* ``QuantizeLinear`` outputs and activation ``DequantizeLinear`` inputs: int8 or uint8.
  int32 is accepted only for a constant (a bias), signed int4 only for a constant Conv
  weight (`check_int4_weight`: symmetric, read by Conv weights alone; docs/int4-weights.md).
  int16, int4 activations, uint4, float8 ... are refused by name until the kernels
  support them.
* scales: finite, > 0 and float32-normal (`MIN_SCALE`); every requantization factor
  (input scale · weight scale / output scale) below `MAX_REQUANT_FACTOR`, the largest
  a Q31 multiplier represents (`compiler.int8.quantize_multiplier`).
* per-axis parameters: ``axis`` in range, one scale (and zero point) per channel, and
  only for constants (weights, biases): activations are quantized per tensor.
* weights symmetric (int8-canonical zero point 0) and per-channel on the output axis.
* an int32 bias: zero point 0, scale ``s_x · s_w`` within `BIAS_SCALE_RTOL`, and no
  value so large that bias + accumulator overflows int32.
* Conv / pooling attributes: ``group >= 1`` dividing the channels, strides and
  dilations >= 1, pads >= 0 (and smaller than a pooling window), weight rank, bias
  shapes; these structural checks are in `compiler.frontend.validate_attrs`, the facts
  every check reads (`ModelFacts`) in `compiler.frontend.facts`.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto

from compiler.errors import InvalidModelError, UnsupportedOpError
from compiler.frontend.facts import ModelFacts, node_attrs, node_name
from compiler.frontend.validate_attrs import (
    check_conv_attrs,
    check_gemm,
    check_inputs_present,
    check_pool,
)
from compiler.frontend.validate_int4 import check_int4_weight, refuse_four_bit

#: Oldest default-domain opset accepted (``QuantizeLinear`` appeared in opset 10).
MIN_OPSET = 10
#: Newest default-domain opset accepted: onnxruntime 1.32 implements every supported op up
#: to 27 (28 loads, but has no QuantizeLinear-28 kernel); never above the installed onnx's.
MAX_OPSET = min(27, onnx.defs.onnx_opset_version())
#: Oldest ONNX IR version (onnxruntime's minimum).
MIN_IR_VERSION = 3
#: Element types of quantized activations the kernels compute in.
QUANT_DTYPES = {TensorProto.INT8: "int8", TensorProto.UINT8: "uint8"}
#: Smallest scale accepted: float32's smallest normal number (denormals lose precision).
MIN_SCALE = float(np.finfo(np.float32).tiny)
#: A requantization factor must stay below 2^30 to fit a Q31 multiplier with a right shift.
MAX_REQUANT_FACTOR = 2.0 ** 30
#: Relative tolerance between an int32 bias's scale and ``s_x · s_w``.
BIAS_SCALE_RTOL = 1e-3
#: Ops whose inputs pass through unchanged in value (walked over to find a requantization).
_ACTIVATIONS = frozenset({"Relu", "Clip", "Identity"})


def _dtype_name(elem_type: int) -> str:
    try:
        return TensorProto.DataType.Name(elem_type)
    except ValueError:
        return f"element type {elem_type}"


def check_versions(model: onnx.ModelProto) -> int:
    """Checks the IR version and the default-domain opset; returns the opset.

    Raises:
        InvalidModelError: no ``ir_version`` (not a complete model), one newer than the
            installed onnx, or no default-domain opset.
        UnsupportedOpError: an opset outside `MIN_OPSET`..`MAX_OPSET`.
    """
    if model.ir_version <= 0:
        raise InvalidModelError(
            "the model has no ir_version: it is not a complete ONNX model (an empty or "
            "truncated file, or another protobuf); export it again")
    if model.ir_version < MIN_IR_VERSION or model.ir_version > onnx.IR_VERSION:
        raise InvalidModelError(
            f"the model's ir_version {model.ir_version} is outside {MIN_IR_VERSION}.."
            f"{onnx.IR_VERSION} (what the installed onnx {onnx.__version__} reads); export it "
            "with a matching exporter or upgrade onnx and onnxruntime")
    opsets = [o.version for o in model.opset_import if o.domain in ("", "ai.onnx")]
    if not opsets:
        raise InvalidModelError(
            "the model imports no default-domain (ai.onnx) opset; export it with an "
            f"opset between {MIN_OPSET} and {MAX_OPSET}")
    opset = opsets[0]
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise UnsupportedOpError(
            f"ONNX opset {opset} is not supported; qanas compiles opsets {MIN_OPSET}.."
            f"{MAX_OPSET} (what onnxruntime accepts). Re-export with e.g. opset_version=17")
    return opset


def _check_scale_values(node: onnx.NodeProto, scale: np.ndarray) -> None:
    where = f"{node_name(node)}: scale {node.input[1]!r}"
    flat = scale.reshape(-1)
    fix = ("every scale must be finite and > 0; re-export the model after calibration (a "
           "zero, negative or non-finite scale is an uncalibrated or broken quantizer)")
    for bad, what in ((np.isnan(flat), "NaN"), (np.isinf(flat), "infinite"),
                      (flat == 0, "zero"), (flat < 0, "negative")):
        if bad.any():
            raise InvalidModelError(f"{where} is {what} (value {float(flat[bad][0])!r} at index "
                                    f"{int(np.argmax(bad))}); {fix}")
    if (flat < MIN_SCALE).any():
        raise InvalidModelError(
            f"{where} is {flat.min():.3g}, below float32's smallest normal number "
            f"({MIN_SCALE:.3g}); {fix}")


def _check_axis(node: onnx.NodeProto, facts: ModelFacts, scale: np.ndarray,
                zp: np.ndarray | None) -> None:
    where = node_name(node)
    data = node.input[0]
    shape = facts.shapes.get(data)
    if shape is None and data in facts.consts:
        shape = tuple(facts.consts[data].shape)
    attrs = node_attrs(node)
    if scale.ndim > 1 or attrs.get("block_size", 0):
        raise UnsupportedOpError(
            f"{where}: blocked quantization (scale {node.input[1]!r} of shape "
            f"{tuple(scale.shape)}) is not supported; use per-tensor or per-axis scales")
    if zp is not None and zp.size != scale.size:  # onnxruntime takes () against (1,)
        raise InvalidModelError(
            f"{where}: zero point {node.input[2]!r} has shape {tuple(zp.shape)} but scale "
            f"{node.input[1]!r} has {tuple(scale.shape)}; they must match")
    if shape is None:
        return
    rank = len(shape)
    axis = int(attrs.get("axis", 1))
    if "axis" in attrs or scale.size > 1:
        if not -rank <= axis < max(rank, 1):
            raise InvalidModelError(
                f"{where}: axis {axis} is out of range for {data!r} of rank {rank} "
                f"(valid: {-rank}..{rank - 1}); set axis to the channel axis")
    if scale.ndim == 1 and scale.size > 1:
        channels = shape[axis % rank] if rank else 1
        if scale.size != channels:
            raise InvalidModelError(
                f"{where}: scale {node.input[1]!r} has {scale.size} values but axis {axis} of "
                f"{data!r} (shape {shape}) has {channels} channels; give one scale per channel")


def _check_qdq(node: onnx.NodeProto, facts: ModelFacts) -> None:
    where = node_name(node)
    refuse_four_bit(node, facts)
    if node.op_type == "QuantizeLinear":
        tensor, elem = node.output[0], facts.dtypes.get(node.output[0])
        if elem is not None and elem not in QUANT_DTYPES:
            raise UnsupportedOpError(
                f"{where} quantizes {node.input[0]!r} to {_dtype_name(elem)}; qanas compiles "
                "int8 and uint8 activations only. Quantize activations to 8 bits (onnxruntime "
                "activation_type=QuantType.QInt8, Brevitas Int8ActPerTensorFloat)")
    else:
        tensor, elem = node.input[0], facts.dtypes.get(node.input[0])
        is_const = node.input[0] in facts.consts
        if elem == TensorProto.INT4 and is_const:
            check_int4_weight(node, facts)
        elif elem is not None and elem not in QUANT_DTYPES and not (
                elem == TensorProto.INT32 and is_const):
            what = "constant" if is_const else "activation"
            raise UnsupportedOpError(
                f"{where} dequantizes the {what} {tensor!r} of type {_dtype_name(elem)}; qanas "
                "compiles int8 and uint8 tensors (and int32 constant biases) only. Quantize "
                "to 8 bits")
    scale = facts.scale(node)
    if scale is None:
        return  # the support table refuses a non-constant scale
    _check_scale_values(node, scale)
    zp = facts.zero_point(node)
    _check_axis(node, facts, scale, None if zp is None else np.asarray(zp))
    if scale.size > 1 and node.input[0] not in facts.consts:
        raise UnsupportedOpError(
            f"{where} quantizes the activation {node.input[0]!r} per channel ({scale.size} "
            "scales); qanas quantizes activations per tensor (one scale and zero point). "
            "Use per-tensor activation quantizers (per-channel is for weights)")
    if elem == TensorProto.INT32 and zp is not None and np.asarray(zp).any():
        raise InvalidModelError(
            f"{where}: the int32 tensor {tensor!r} has a non-zero zero point; an int32 bias "
            "must have zero point 0")


def _weight_param(node: onnx.NodeProto) -> tuple[int, int]:
    """(weight input index, output-channel axis of the weight) of a Conv/Gemm/MatMul."""
    if node.op_type == "Gemm":
        return 1, 0 if node_attrs(node).get("transB", 0) else 1
    if node.op_type == "MatMul":
        return 1, 1
    return 1, 0


def _check_weight(node: onnx.NodeProto, facts: ModelFacts) -> np.ndarray | None:
    """Checks a dequantized constant weight; returns its scale (None: not a QDQ weight)."""
    index, out_axis = _weight_param(node)
    dq = facts.dq_source(node.input[index]) if len(node.input) > index else None
    if dq is None or dq.input[0] not in facts.consts:
        return None
    where = f"weight {dq.input[0]!r} of {node_name(node)}"
    q = np.asarray(facts.consts[dq.input[0]])
    zp = facts.zero_point(dq)
    zp = np.zeros(1, q.dtype) if zp is None else np.asarray(zp)  # omitted: 0 of q's type
    if q.dtype in (np.int8, np.uint8):
        canonical = zp.astype(np.int64) - (128 if q.dtype == np.uint8 else 0)
        if canonical.any():
            raise UnsupportedOpError(
                f"{where} has zero point(s) {np.unique(np.asarray(zp)).tolist()[:4]}; weights "
                "must be symmetric (zero point 0 for int8, 128 for uint8). Quantize weights "
                "symmetrically (onnxruntime WeightSymmetric=True, Brevitas Int8Weight*)")
    scale = facts.scale(dq)
    if scale is not None and scale.size > 1:
        axis = int(node_attrs(dq).get("axis", 1)) % max(q.ndim, 1)
        if axis != out_axis:
            raise UnsupportedOpError(
                f"{where} is quantized per channel along axis {axis}; qanas supports "
                f"per-channel weights only along the output-channel axis ({out_axis})")
    return scale


def _input_scale(node: onnx.NodeProto, facts: ModelFacts) -> np.ndarray | None:
    dq = facts.dq_source(node.input[0])
    return None if dq is None else facts.scale(dq)


def _check_bias(node: onnx.NodeProto, facts: ModelFacts, w_scale: np.ndarray | None) -> None:
    if len(node.input) < 3 or not node.input[2]:
        return
    dq = facts.dq_source(node.input[2])
    if dq is None or dq.input[0] not in facts.consts:
        return
    b = np.asarray(facts.consts[dq.input[0]])
    if b.dtype != np.int32:
        return
    where = f"bias {dq.input[0]!r} of {node_name(node)}"
    s_x = _input_scale(node, facts)
    s_b = facts.scale(dq)
    if s_x is not None and w_scale is not None and s_b is not None:
        expected = (s_x.reshape(-1)[:1] * w_scale.reshape(-1)).astype(np.float32)
        got = s_b.reshape(-1)
        comparable = got.size == 1 or expected.size == 1 or got.size == expected.size
        if not comparable or not np.allclose(got, expected, rtol=BIAS_SCALE_RTOL, atol=0):
            raise InvalidModelError(
                f"{where} has scale {s_b.reshape(-1)[:4].tolist()} but input scale x weight "
                f"scale is {expected[:4].tolist()}; an int32 bias must be quantized at "
                "s_x·s_w with zero point 0 (Brevitas Int32Bias, onnxruntime quantize_static do)")
    w_dq = facts.dq_source(node.input[1])
    if w_dq is None or w_dq.input[0] not in facts.consts:
        return
    w = np.asarray(facts.consts[w_dq.input[0]])
    index, out_axis = _weight_param(node)
    depth = w.size // max(w.shape[out_axis], 1) if w.ndim else 1
    headroom = 2 ** 31 - 1 - 2 * depth * 128 * 128
    big = np.abs(b.astype(np.int64)) > headroom
    if big.any():
        raise InvalidModelError(
            f"{where} holds {int(b.reshape(-1)[np.argmax(big.reshape(-1))])}, so bias plus the "
            f"largest accumulation ({depth} products of int8 values) can overflow int32 "
            f"(|bias| must be <= {max(headroom, 0)}); the bias scale is too small or the bias "
            "is corrupt: re-export the model")


def _check_requant(node: onnx.NodeProto, facts: ModelFacts) -> None:
    """Every input-to-output scale factor of the group a QuantizeLinear closes is representable."""
    s_y = facts.scale(node)
    op = facts.producers.get(node.input[0])
    while op is not None and op.op_type in _ACTIVATIONS:
        op = facts.producers.get(op.input[0]) if op.input else None
    if s_y is None or op is None:
        return
    factors = []
    if op.op_type in ("Conv", "Gemm", "MatMul"):
        s_x, w_dq = _input_scale(op, facts), facts.dq_source(op.input[1])
        s_w = facts.scale(w_dq) if w_dq is not None else None
        if s_x is not None and s_w is not None:
            factors.append(float(s_x.max() * s_w.max() / s_y.min()))
    else:
        sources = [op] if op.op_type == "DequantizeLinear" else [
            facts.dq_source(i) for i in op.input if i]
        for dq in sources:
            s_in = facts.scale(dq) if dq is not None else None
            if s_in is not None:
                factors.append(float(s_in.max() / s_y.min()))
    if factors and max(factors) >= MAX_REQUANT_FACTOR:
        raise InvalidModelError(
            f"{node_name(node)} requantizes the output of {node_name(op)} with the factor "
            f"{max(factors):.3g} (input scale / output scale), above what the int8 kernels "
            f"represent (< 2^30); the scales are inconsistent: recalibrate the model")


def _check_softmax(node: onnx.NodeProto, facts: ModelFacts) -> None:
    """An int8 softmax (of a DequantizeLinear) runs over the last axis into a scale below 1."""
    if facts.dq_source(node.input[0]) is None:
        return  # a float softmax: any axis
    shape = facts.shape(node.input[0]) or (1,)
    axis = int(node_attrs(node).get("axis", -1)) % len(shape)
    if axis != len(shape) - 1:
        raise UnsupportedOpError(
            f"{node_name(node)} is an int8 Softmax over axis {axis} of a rank-{len(shape)} "
            "tensor: the integer softmax runs over the last axis only; transpose that axis "
            "to the end before the Softmax (and back after it) in the model")
    for consumer, _ in facts.consumers.get(node.output[0], []):
        scale = facts.scale(consumer) if consumer.op_type == "QuantizeLinear" else None
        if scale is not None and scale.max() >= 1:
            raise UnsupportedOpError(
                f"{node_name(consumer)} quantizes the probabilities of {node_name(node)} with "
                f"scale {scale.max():g}: the integer softmax needs an output scale below 1 "
                "(1/256 or 1/255 is usual); recalibrate the model")


_NODE_CHECKS = {
    "QuantizeLinear": [_check_qdq, _check_requant],
    "DequantizeLinear": [_check_qdq],
    "Conv": [check_conv_attrs],
    "QLinearConv": [check_conv_attrs],
    "ConvInteger": [check_conv_attrs],
    "AveragePool": [check_pool],
    "MaxPool": [check_pool],
    "Gemm": [check_gemm],
    "Softmax": [_check_softmax],
}


def _check_matmul_like(node: onnx.NodeProto, facts: ModelFacts) -> None:
    _check_bias(node, facts, _check_weight(node, facts))


for _op in ("Conv", "Gemm", "MatMul"):
    _NODE_CHECKS.setdefault(_op, []).append(_check_matmul_like)


def check_model_values(model: onnx.ModelProto, consts: dict[str, np.ndarray],
                       shapes: dict[str, tuple[int, ...]]) -> None:
    """Checks every computed node of a checked, shape-inferred model (see the module doc).

    Args:
        model: the model as `compiler.frontend.check_onnx` returns it.
        consts: tensor name → value of every initializer and folded constant.
        shapes: tensor name → static shape.

    Raises:
        InvalidModelError: a broken value (scale, zero point, axis, bias, attribute).
        UnsupportedOpError: a valid model outside what qanas compiles (int16, asymmetric
            weights, blocked quantization ...).
    """
    facts = ModelFacts.of(model, consts, shapes)
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")),
                 MIN_OPSET)
    for node in model.graph.node:
        if node.op_type != "DequantizeLinear" and node.output and all(
                o in consts for o in node.output if o):
            continue  # folded at import time
        check_inputs_present(node, opset)
        for check in _NODE_CHECKS.get(node.op_type, ()):
            check(node, facts)


__all__ = [
    "BIAS_SCALE_RTOL",
    "MAX_OPSET",
    "MAX_REQUANT_FACTOR",
    "MIN_OPSET",
    "MIN_SCALE",
    "ModelFacts",
    "QUANT_DTYPES",
    "check_model_values",
    "check_versions",
]
