"""Post-training int8 quantization of a static subnet with Brevitas graph mode.

The flow is `fold_batchnorm` -> `quantize_model` -> `calibrate` -> `export_qdq`:

1. The float model is traced with torch.fx and every BatchNorm is merged into the
   convolution before it (`brevitas.graph.quantize.preprocess_for_quantize`).
2. Ops that Brevitas's `quantize` leaves in float are followed by a requantizer
   (`QuantIdentity`): elementwise products, resizes, average pools and the
   network output. Brevitas itself quantizes the input, every activation, and
   aligns the scales of the inputs of every residual add and concat, so the
   exported QDQ graph lowers to integer Add / Concat.
3. `brevitas.graph.quantize.quantize` swaps convolutions for `QuantConv2d`
   (int8 per-channel weights, int32 bias) and activations for their quantized
   versions, with quantizers built from a `QuantSpec`.

Example:
    >>> qmodel = quantize_model(float_model, QuantSpec())  # doctest: +SKIP
    >>> calibrate(qmodel, calib_images)  # doctest: +SKIP
    >>> export_qdq(qmodel, calib_images[0], "subnet.onnx")  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import operator
import warnings
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn
from torch.fx import GraphModule, Node

from qanas.quant.errors import QuantizationError
from qanas.quant.export import export_qdq
from qanas.quant.qat import strip_qat
from qanas.quant.rewrite import fast_rewrites
from qanas.quant.spec import QuantSpec

__all__ = ["calibrate", "export_qdq", "fold_batchnorm", "quantize_model", "quant_maps"]

# Ops that produce values off the input's quantization grid and that Brevitas's
# `quantize` does not requantize by itself.
_REQUANT_FUNCTIONS = (operator.mul, torch.mul, F.interpolate, torch.matmul)
_REQUANT_MODULES = (nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Softmax)
_NONNEG_ACTS = (nn.ReLU, nn.ReLU6, nn.Sigmoid, nn.Hardsigmoid)
# Attention: each operand of a matmul is int8 (a conv feeding one through these layout
# ops gets an output requantizer); the int32 product and the softmax are requantized.
_LAYOUT_FUNCTIONS = (torch.flatten, torch.reshape, torch.transpose)
# Brevitas quantizes the *output* of these activations only; a conv feeding one would
# leave the conv -> activation edge float (QuantizeLinear follows the activation), which
# an integer-only compiler cannot lower. Such convs get a signed int8 output requantizer.
# (ReLU is exempt: Conv -> Relu -> QuantizeLinear lowers to a clamped requantization.)
_FLOAT_INPUT_ACTS = (nn.Sigmoid, nn.Hardsigmoid, nn.Hardswish)
_COMPUTE_MODULES = (nn.Conv2d, nn.Linear)
_SIGN_PRESERVING_MODULES = (nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.Identity, nn.MaxPool2d)
_SIGN_PRESERVING_FUNCTIONS = (operator.mul, torch.mul, operator.add, torch.add, torch.cat,
                              F.interpolate) + _LAYOUT_FUNCTIONS
SUPPORTED_MODULES = (nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.Hardswish, nn.Hardsigmoid,
                     nn.Sigmoid, nn.Identity, nn.AdaptiveAvgPool2d, nn.AvgPool2d, nn.MaxPool2d,
                     nn.Dropout, nn.Linear, nn.Softmax)
SUPPORTED_FUNCTIONS = (operator.add, operator.iadd, torch.add, operator.mul, torch.mul, torch.cat,
                       F.interpolate, torch.flatten, getattr, operator.getitem, torch.matmul,
                       torch.reshape, torch.transpose, torch.narrow)


def _silence_brevitas():
    """Brevitas warns about optional packages and deprecated torch calls on import/trace."""
    warnings.filterwarnings("ignore", module=r"brevitas(\..*)?")
    warnings.filterwarnings("ignore", message=".*fast_hadamard_transform.*")
    warnings.filterwarnings("ignore", message=".*children_specs.*")


def quant_maps(spec: QuantSpec) -> dict:
    """The Brevitas layer maps (`quantize` keyword arguments) that implement `spec`.

    Returns:
        dict with `quant_identity_map`, `compute_layer_map`, `quant_act_map` and
        `unsigned_act_tuple` (the `brevitas.graph.quantize.quantize` arguments), and
        `requant_identity_map` (the requantizers `quantize_model` inserts itself).
    """
    _silence_brevitas()
    import brevitas.nn as qnn
    from brevitas.nn.quant_layer import QuantNonLinearActLayer
    from brevitas.quant import (
        Int8ActPerTensorFloat,
        Int8WeightPerChannelFloat,
        Int8WeightPerTensorFloat,
        Int16Bias,
        Int24Bias,
        Uint8ActPerTensorFloat,
    )

    from qanas.quant.bias import Int32BiasHeadroom

    weight_base = Int8WeightPerChannelFloat if spec.weight_per_channel else Int8WeightPerTensorFloat
    weight_quant = weight_base.let(bit_width=spec.weight_bits,
                                   narrow_range=spec.narrow_range_weights)
    layer_bits = {bits for _, bits in spec.layer_weight_bits if bits != spec.weight_bits}
    # 32-bit codes saturate at +-2^30, not 2^31 - 1 (which float32 rounds up to 2^31 and
    # the exporter's int32 cast wraps to -2^31): see `qanas.quant.bias`.
    bias_quant = {16: Int16Bias, 24: Int24Bias, 32: Int32BiasHeadroom}[spec.bias_bits]
    signed = Int8ActPerTensorFloat.let(bit_width=spec.act_bits,
                                       high_percentile_q=spec.act_percentile)
    unsigned = signed if spec.act_signed else Uint8ActPerTensorFloat.let(
        bit_width=spec.act_bits, high_percentile_q=spec.act_percentile)

    def act(impl, quant, passthrough=False):
        return (QuantNonLinearActLayer, {"act_impl": impl, "passthrough_act": passthrough,
                                         "input_quant": None, "act_quant": quant,
                                         "return_quant_tensor": True})

    conv = {"weight_quant": weight_quant, "bias_quant": bias_quant, "return_quant_tensor": True}
    signed_identity = (qnn.QuantIdentity, {"act_quant": signed, "return_quant_tensor": True})
    return {
        # Brevitas picks "unsigned" for the requantizers it inserts when its sign analysis
        # (`are_inputs_unsigned`) says so, but that analysis reads `input_quant.is_signed`,
        # which is None for every QuantIdentity/QuantReLU, so a signed branch can be taken
        # for unsigned and clipped at zero. Its requantizers are therefore always signed;
        # ours (`_insert_requantizers`) use a sound analysis and may be unsigned.
        "quant_identity_map": {"signed": signed_identity, "unsigned": signed_identity},
        "requant_identity_map": {
            "signed": signed_identity,
            "unsigned": (qnn.QuantIdentity, {"act_quant": unsigned, "return_quant_tensor": True}),
        },
        "compute_layer_map": {
            nn.AvgPool2d: None,
            nn.Conv2d: (qnn.QuantConv2d, conv),
            nn.Linear: (qnn.QuantLinear, conv),
            # the convs `_mark_layer_bits` retypes get weights of their own bit width
            **{_bits_conv_class(bits): (qnn.QuantConv2d, {**conv, "weight_quant": weight_base.let(
                bit_width=bits, narrow_range=spec.narrow_range_weights)})
               for bits in sorted(layer_bits)},
        },
        "quant_act_map": {
            nn.ReLU: (qnn.QuantReLU, {"act_quant": unsigned, "return_quant_tensor": True}),
            nn.Sigmoid: (qnn.QuantSigmoid, {"act_quant": unsigned, "return_quant_tensor": True}),
            nn.Hardsigmoid: act(nn.Hardsigmoid, unsigned),
            nn.Hardswish: act(nn.Hardswish, signed),
        },
        "unsigned_act_tuple": () if spec.act_signed else _NONNEG_ACTS,
    }


_BITS_CONV_CLASSES: dict[int, type] = {}


def _bits_conv_class(bits: int) -> type:
    """The `nn.Conv2d` subclass that stands for "a conv with `bits`-bit weights".

    Brevitas's `compute_layer_map` dispatches on the exact module type, so a per-layer
    weight bit width is a map entry for a type of its own.
    """
    if bits not in _BITS_CONV_CLASSES:
        _BITS_CONV_CLASSES[bits] = type(f"Conv2dWeight{bits}Bit", (nn.Conv2d,), {})
    return _BITS_CONV_CLASSES[bits]


def _mark_layer_bits(graph_model: GraphModule, spec: QuantSpec) -> None:
    """Retypes each conv of `spec.layer_weight_bits` (other than `spec.weight_bits`) in place.

    Raises:
        QuantizationError: a named layer that is not a plain `nn.Conv2d` of the model.
    """
    modules = dict(graph_model.named_modules())
    for name, bits in spec.layer_weight_bits:
        module = modules.get(name)
        if type(module) is not nn.Conv2d and type(module) is not _BITS_CONV_CLASSES.get(bits):
            raise QuantizationError(
                f"QuantSpec.layer_weight_bits names {name!r}, which is not a Conv2d of this "
                f"model; its convs are: {[n for n, m in modules.items() if isinstance(m, nn.Conv2d)][:8]}...")
        if bits != spec.weight_bits:
            # fx calls the module by name, so the traced graph is unchanged by the new type
            module.__class__ = _bits_conv_class(bits)


def fold_batchnorm(model: nn.Module, copy_model: bool = True) -> GraphModule:
    """Traces `model` with torch.fx and merges every BatchNorm into the conv before it.

    The model is copied first unless `copy_model` is False (then its convs are folded in
    place), and stripped of QAT fake quantization; the result computes the same function
    in eval mode (up to float rounding).

    Raises:
        QuantizationError: if the model cannot be traced or a BatchNorm does not
            follow a convolution (it would stay a float op in the int8 graph).
    """
    _silence_brevitas()
    from brevitas.fx import symbolic_trace
    from brevitas.graph.fixed_point import MergeBatchNorm

    model = strip_qat(copy.deepcopy(model) if copy_model else model).eval()
    graph_model = model if isinstance(model, GraphModule) else _trace(model, symbolic_trace)
    graph_model = MergeBatchNorm().apply(graph_model)
    _check_no_batchnorm(graph_model)
    return graph_model


def _trace(model: nn.Module, tracer) -> GraphModule:
    try:
        return tracer(model)
    except Exception as exc:  # noqa: BLE001 - fx raises many types; we add the fix
        raise QuantizationError(
            f"torch.fx cannot trace {type(model).__name__}: {exc}. Quantize the static subnet "
            f"from `supernet.extract(cfg)`, not the supernet (data-dependent control flow "
            f"cannot be traced)") from exc


def _check_no_batchnorm(graph_model: GraphModule) -> None:
    left = [name for name, m in graph_model.named_modules()
            if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if left:
        raise QuantizationError(
            f"BatchNorm layers {left} do not directly follow a convolution with a single user, "
            f"so they cannot be folded; int8 graphs have no BatchNorm. Place each BatchNorm right "
            f"after its Conv2d in the extracted subnet")


def _check_supported(graph_model: GraphModule) -> None:
    for node in graph_model.graph.nodes:
        if node.op == "call_module":
            module = graph_model.get_submodule(node.target)
            if not isinstance(module, SUPPORTED_MODULES):
                raise QuantizationError(
                    f"module {node.target!r} of type {type(module).__name__} is not supported by "
                    f"the int8 flow; supported: {', '.join(m.__name__ for m in SUPPORTED_MODULES)}")
        elif node.op == "call_function" and node.target not in SUPPORTED_FUNCTIONS:
            raise QuantizationError(
                f"function {getattr(node.target, '__name__', node.target)!r} (node {node.name}) "
                f"is not supported by the int8 flow; use modules or one of: "
                f"{', '.join(getattr(f, '__name__', str(f)) for f in SUPPORTED_FUNCTIONS)}")
        elif node.op == "call_method":
            raise QuantizationError(
                f"tensor method .{node.target}() (node {node.name}) is not supported by the int8 "
                f"flow; write it as a module or a torch function")


def _nonnegative(graph_model: GraphModule, node: Node, memo: dict) -> bool:
    """Whether `node`'s value is provably >= 0 (decides uint8 vs int8 requantizers)."""
    if node in memo:
        return memo[node]
    memo[node] = False  # guards against cycles; fx graphs have none, but be safe
    result = False
    if node.op == "call_module":
        module = graph_model.get_submodule(node.target)
        if isinstance(module, (*_NONNEG_ACTS, nn.Softmax)):
            result = True
        elif isinstance(module, _SIGN_PRESERVING_MODULES):
            result = all(_nonnegative(graph_model, n, memo) for n in node.all_input_nodes)
    elif node.op == "call_function" and node.target in _SIGN_PRESERVING_FUNCTIONS:
        result = all(_nonnegative(graph_model, n, memo) for n in node.all_input_nodes)
    memo[node] = result
    return result


def _through_layout(node: Node) -> Node:
    """The node whose value `node` reshapes/transposes (`node` itself if it is no layout op)."""
    while node.op == "call_function" and node.target in _LAYOUT_FUNCTIONS:
        node = node.args[0]
    return node


def _insert_requantizers(graph_model: GraphModule, spec: QuantSpec, maps: dict) -> GraphModule:
    """Adds a `QuantIdentity` after products, resizes, average pools, softmax, the output,
    every conv/linear that feeds a non-ReLU activation (Sigmoid, Hardsigmoid, Hardswish),
    and every conv/linear that is (through reshapes/transposes) a matmul operand."""
    from brevitas.graph.base import InsertModuleCallAfter

    memo: dict = {}
    rewriters = []
    requantized: set[Node] = set()

    def add_after(node: Node) -> None:
        unsigned = not spec.act_signed and _nonnegative(graph_model, node, memo)
        cls, kwargs = maps["requant_identity_map"]["unsigned" if unsigned else "signed"]
        name = f"{node.name}_requant"
        graph_model.add_module(name, cls(**kwargs))
        rewriters.append(InsertModuleCallAfter(name, node))
        requantized.add(node)

    for node in graph_model.graph.nodes:
        if node.op == "call_function" and node.target is torch.matmul:
            for operand in node.args[:2]:
                producer = _through_layout(operand)
                if (producer.op == "call_module" and producer not in requantized and isinstance(
                        graph_model.get_submodule(producer.target), _COMPUTE_MODULES)):
                    add_after(producer)
        if node.op == "call_function" and node.target in _REQUANT_FUNCTIONS:
            add_after(node)
        elif node.op == "call_module" and isinstance(graph_model.get_submodule(node.target),
                                                      _REQUANT_MODULES):
            add_after(node)
        elif node.op == "call_module" and isinstance(graph_model.get_submodule(node.target),
                                                      _COMPUTE_MODULES):
            if any(user.op == "call_module"
                   and isinstance(graph_model.get_submodule(user.target), _FLOAT_INPUT_ACTS)
                   for user in node.users):
                add_after(node)  # a conv output is never provably >= 0: always signed
    output = next(n for n in graph_model.graph.nodes if n.op == "output")
    result = output.args[0]
    if not hasattr(result, "op"):  # fx (or Brevitas's backported fx) Node
        raise QuantizationError("the model must return a single tensor (the logits)")
    # Activations are quantized by Brevitas itself; anything else gets an output quantizer.
    ends_quantized = result in requantized or (
        result.op == "call_module"
        and isinstance(graph_model.get_submodule(result.target), tuple(maps["quant_act_map"])))
    if not ends_quantized:
        add_after(result)
    for rewriter in rewriters:
        graph_model = rewriter.apply(graph_model)
    return graph_model


def quantize_model(model: nn.Module, spec: QuantSpec | None = None,
                   copy_model: bool = True) -> GraphModule:
    """Returns a Brevitas fake-quant copy of a static float model, as `spec` describes.

    BatchNorm is folded, the input and output are quantized, every conv gets
    quantized weights and bias, every activation and every off-grid op is
    requantized, and the inputs of adds/concats share scales. Call `calibrate`
    before using the result.

    Args:
        model: a static, fx-traceable float model (an extracted subnet); not modified
            unless `copy_model` is False.
        spec: the quantization format (default `QuantSpec()`: int8 per channel, int32 bias).
        copy_model: False skips the deep copy of `model` (for callers that discard it:
            its BatchNorms are then folded into its convs in place).

    Raises:
        QuantizationError: on untraceable models, unsupported ops, or unfoldable BatchNorm.
    """
    spec = spec or QuantSpec()
    _silence_brevitas()
    from brevitas.graph.quantize import preprocess_for_quantize, quantize

    maps = quant_maps(spec)
    with fast_rewrites():  # the same rewrites, without re-scanning the model for each one
        graph_model = fold_batchnorm(model, copy_model)
        graph_model = preprocess_for_quantize(graph_model, trace_model=False,
                                              relu6_to_relu=True, merge_bn=True)
        _check_supported(graph_model)
        graph_model = _insert_requantizers(graph_model, spec, maps)
        _mark_layer_bits(graph_model, spec)
        qmodel = quantize(graph_model,
                          **{k: v for k, v in maps.items() if k != "requant_identity_map"})
    qmodel.eval()
    qmodel.qanas_quant_spec = spec.to_dict()
    return qmodel


def _images(batches: Iterable) -> Iterable[torch.Tensor]:
    for batch in batches:
        yield batch[0] if isinstance(batch, (tuple, list)) else batch


@torch.no_grad()
def calibrate(qmodel: nn.Module, batches: Iterable, max_batches: int | None = None) -> int:
    """Calibrates the activation ranges of a `quantize_model` result in place.

    Runs the model with quantization disabled while Brevitas collects activation
    statistics (`brevitas.graph.calibrate.calibration_mode`), then freezes the scales.

    Args:
        qmodel: the fake-quant model.
        batches: image tensors or `(image, mask)` pairs.
        max_batches: stop after this many batches (default: all).

    Returns:
        The number of batches used.

    Raises:
        QuantizationError: if `batches` is empty.
    """
    from brevitas.graph.calibrate import calibration_mode

    qmodel.eval()
    # Brevitas's `calibration_mode` saves each quantizer's `observer_only` flag once per
    # activation proxy that contains it and restores them in the same order. A quantizer
    # shared by several proxies (Brevitas aligns the inputs of a concat by sharing one)
    # is saved a second time after the first proxy already set the flag, and is restored
    # to "observer only": it keeps reporting its scale but stops rounding and clamping,
    # so the fake-quant model stops matching its export. Restore the flags ourselves.
    observer_flags = {m: m.observer_only for m in qmodel.modules() if hasattr(m, "observer_only")}
    used = 0
    try:
        with calibration_mode(qmodel):
            for image in _images(batches):
                if max_batches is not None and used >= max_batches:
                    break
                qmodel(image)
                used += 1
    finally:
        for module, flag in observer_flags.items():
            module.observer_only = flag
    if used == 0:
        raise QuantizationError("calibration needs at least one batch of images; got none")
    qmodel.eval()
    return used
