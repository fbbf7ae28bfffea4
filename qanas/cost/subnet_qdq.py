"""The QCDQ ONNX of a calibrated Brevitas subnet, written from its graph without tracing.

`qanas.quant.export_qdq` exports through Brevitas's TorchScript exporter, which traces
the whole fake-quant model (one more forward pass, with every quantizer in export
mode); that is most of the time of a subnet's export. For a memory plan the compiler
needs the same graph: the same operators in the same order with the same attributes and
shapes, and the same quantization parameters (which scales are equal decides whether a
rescale exists, whether a concat dequantizes once, ...). `qcdq_from_graph` writes that
graph directly from the `torch.fx` graph `qanas.quant.quantize_model` returns, reading
every scale from the calibrated quantizers, and every integer weight from Brevitas's own
weight quantizer, in the node-for-node form Brevitas's exporter writes (input
QuantizeLinear → DequantizeLinear; weights Clip → DequantizeLinear; int32 bias
DequantizeLinear; activations op → QuantizeLinear → DequantizeLinear; constant Resize
sizes and Reshape targets, as `qanas.quant.export` folds them).

Scope: the modules and functions the search spaces' subnets use, attention included
(``torch.flatten``/``reshape``/``transpose`` as Reshape/Transpose, ``torch.matmul``,
``nn.Softmax``, ``torch.narrow`` as Slice: `qanas.cost.qdq_layout`), 8-bit activations
and weights with zero points 0. Anything else raises `UnsupportedGraph`,
and the caller exports through Brevitas instead. `tests/qanas/search/test_subnet_qdq.py` checks,
on subnets of every space, that the graph equals Brevitas's export operator for
operator, attribute for attribute and scale for scale, and that the compiler plans the
same arena from both.
"""

from __future__ import annotations

import operator

import numpy as np

from qanas.cost.qdq_layout import write_layout
from qanas.cost.qdq_writer import QdqWriter, UnsupportedGraph

OPSET = 17
INT32_BIAS_LIMIT = 2.0 ** 30


def _proxy_params(proxy) -> tuple[np.float32, bool]:
    """(scale, signed) of a calibrated 8-bit activation quantizer with zero point 0."""
    if float(proxy.bit_width()) != 8 or float(proxy.zero_point()) != 0:
        raise UnsupportedGraph("activation quantizer other than 8 bits with zero point 0")
    scale = proxy.scale()
    if scale.numel() != 1:
        raise UnsupportedGraph("per-channel activation scale")
    return np.float32(scale.detach().reshape(())), bool(proxy.is_signed)


def _conv(w: QdqWriter, module, x: str, hint: str) -> str:
    """A Brevitas QuantConv2d (see `_write_conv`)."""
    if module.padding_mode != "zeros" or isinstance(module.padding, str):
        raise UnsupportedGraph("conv padding mode")
    if module.input_quant.is_quant_enabled or module.output_quant.is_quant_enabled:
        raise UnsupportedGraph("conv with its own input or output quantizer")
    qw = module.quant_weight()
    if float(qw.bit_width) != 8 or float(qw.zero_point.abs().max()) != 0:
        raise UnsupportedGraph("weights other than 8 bits with zero point 0")
    bias = None if module.bias is None else module.bias.detach().numpy()
    return _write_conv(w, x, qw.int().detach().numpy(), qw.scale.detach().reshape(-1).numpy(),
                       bool(module.weight_quant.is_narrow_range), bias, module.stride,
                       module.padding, module.dilation, module.groups, hint)


def _write_conv(w: QdqWriter, x: str, codes, w_scale, narrow: bool, bias, stride, padding,
                dilation, groups: int, hint: str) -> str:
    """Weights Clip → DQ (per channel), int32 bias DQ (scale input x weight), Conv.

    The weight and bias nodes are Brevitas's quantizers, written per conv even where two
    convs have equal weights (a zero-initialised projection: all codes 0).
    """
    if x not in w.scale:
        raise UnsupportedGraph("conv of a tensor that is not dequantized")
    w_int = np.asarray(codes).astype(np.int8)
    w_scale = np.asarray(w_scale, np.float32).reshape(-1)
    out_ch = w_int.shape[0]
    if w_scale.size != out_ch or out_ch == 1:
        raise UnsupportedGraph("per-tensor weight scale")
    lo, hi = (-127 if narrow else -128), 127
    clipped = w.node("Clip", [w.const(w_int, f"{hint}_w"), w.const(np.array(lo, np.int8), "lo"),
                              w.const(np.array(hi, np.int8), "hi")], w_int.shape, f"{hint}_wclip",
                 merged=False)
    wdq = w.node("DequantizeLinear", [clipped, w.const(w_scale, f"{hint}_wscale"),
                                      w.const(np.zeros(out_ch, np.int8), f"{hint}_wzp")],
                 w_int.shape, f"{hint}_wdq", merged=False, axis=0)
    inputs = [x, wdq]
    if bias is not None:
        b_scale = (w.scale[x] * w_scale).astype(np.float32)
        b_codes = np.round(np.asarray(bias, np.float32) / b_scale)
        b_codes = np.clip(b_codes, -INT32_BIAS_LIMIT, INT32_BIAS_LIMIT).astype(np.int32)
        inputs.append(w.node("DequantizeLinear", [
            w.const(b_codes, f"{hint}_b"), w.const(b_scale, f"{hint}_bscale"),
            w.const(np.zeros(out_ch, np.int32), f"{hint}_bzp")], (out_ch,), f"{hint}_bdq",
            merged=False, axis=0))
    n, _, h, wd = w.shape[x]
    kh, kw = w_int.shape[2:]
    (sh, sw), (dh, dw), (ph, pw) = _pair(stride), _pair(dilation), _pair(padding)
    oh = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    ow = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    return w.node("Conv", inputs, (n, out_ch, oh, ow), hint, dilations=[dh, dw],
                  group=int(groups), kernel_shape=[int(kh), int(kw)], pads=[ph, pw, ph, pw],
                  strides=[sh, sw])


def _interpolate(w: QdqWriter, x: str, size, scale_factor, mode: str, align_corners,
                 recompute, hint: str):
    n, c, h, wd = w.shape[x]
    if size is not None:
        oh, ow = (size, size) if isinstance(size, int) else tuple(size)
    elif scale_factor is not None and not recompute:
        fh, fw = (scale_factor, scale_factor) if np.isscalar(scale_factor) else scale_factor
        oh, ow = int(np.floor(h * fh)), int(np.floor(wd * fw))
        if oh != h * fh or ow != wd * fw:
            raise UnsupportedGraph("fractional interpolate scale")
    else:
        raise UnsupportedGraph("interpolate without size or a fixed scale factor")
    if mode == "bilinear":
        attrs = {"mode": "linear",
                 "coordinate_transformation_mode": "align_corners" if align_corners else "half_pixel"}
    elif mode == "nearest":
        attrs = {"mode": "nearest", "coordinate_transformation_mode": "asymmetric"}
    else:
        raise UnsupportedGraph(f"interpolate mode {mode}")
    if size is not None:  # torch passes `size` as Resize sizes, a factor as its scales
        inputs = [x, "", "", w.const(np.array([n, c, oh, ow], np.int64), f"{hint}_sizes")]
    else:
        inputs = [x, "", w.const(np.array([1, 1, fh, fw], np.float32), f"{hint}_scales")]
    return w.node("Resize", inputs, (n, c, oh, ow), hint, cubic_coeff_a=-0.75,
                  nearest_mode="floor", **attrs)


def graph_signature(model) -> tuple:
    """What a QDQ ONNX graph computes, independent of tensor names and constant layout.

    One entry per operator in graph order: its type, its attributes and, per input, the
    operator it reads (by position), the graph input, nothing, or a constant (dtype,
    shape and a digest of its bytes; ``Constant`` nodes and initializers alike); then the
    positions of the graph outputs. Two graphs with equal signatures are the same
    computation on the same constants, so the compiler lowers and plans them alike.
    """
    import hashlib

    import onnx
    from onnx import numpy_helper

    values = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            values[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    inputs = {i.name for i in model.graph.input if i.name not in values}
    position: dict[str, tuple[int, int]] = {}
    ops = []
    for node in model.graph.node:
        if node.op_type == "Constant":
            continue
        refs = []
        for name in node.input:
            if not name:
                refs.append(("none",))
            elif name in values:
                v = values[name]
                refs.append(("const", str(v.dtype), tuple(v.shape),
                             hashlib.sha256(np.array(v, order="C").tobytes()).hexdigest()[:16]))
            elif name in inputs:
                refs.append(("input",))
            else:
                refs.append(("op", position[name]))
        attrs = []
        for a in node.attribute:
            v = onnx.helper.get_attribute_value(a)
            attrs.append((a.name, v.decode() if isinstance(v, bytes) else
                          tuple(v) if isinstance(v, list) else v))
        for j, name in enumerate(node.output):
            position[name] = (len(ops), j)
        ops.append((node.op_type, tuple(sorted(attrs)), tuple(refs)))
    return tuple(ops), tuple(position.get(o.name) for o in model.graph.output)


def _pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def _avg_pool(w: QdqWriter, module, x: str, hint: str) -> str:
    """nn.AvgPool2d as torch exports it: AveragePool with explicit pads."""
    if module.divisor_override is not None:
        raise UnsupportedGraph("average pool with a divisor override")
    (kh, kw), (ph, pw) = _pair(module.kernel_size), _pair(module.padding)
    sh, sw = _pair(module.stride if module.stride is not None else module.kernel_size)
    rounding = np.ceil if module.ceil_mode else np.floor
    n, c, h, wd = w.shape[x]
    oh = int(rounding((h + 2 * ph - kh) / sh)) + 1
    ow = int(rounding((wd + 2 * pw - kw) / sw)) + 1
    if module.ceil_mode and ((oh - 1) * sh >= h + ph or (ow - 1) * sw >= wd + pw):
        raise UnsupportedGraph("average pool whose last window starts in the padding")
    return w.node("AveragePool", [x], (n, c, oh, ow), hint, ceil_mode=int(module.ceil_mode),
                  count_include_pad=int(module.count_include_pad), kernel_shape=[kh, kw],
                  pads=[ph, pw, ph, pw], strides=[sh, sw])


def _module(w: QdqWriter, module, x: str, hint: str) -> str:
    """nn.AdaptiveAvgPool2d(1) as GlobalAveragePool, nn.AvgPool2d as AveragePool,
    nn.Softmax as Softmax."""
    from torch import nn

    if type(module) is nn.AdaptiveAvgPool2d and module.output_size in (1, (1, 1)):
        n, c = w.shape[x][:2]
        return w.node("GlobalAveragePool", [x], (n, c, 1, 1), hint)
    if type(module) is nn.AvgPool2d:
        return _avg_pool(w, module, x, hint)
    if type(module) is nn.Softmax and module.dim is not None:
        return w.node("Softmax", [x], w.shape[x], hint, axis=int(module.dim))
    raise UnsupportedGraph(f"module {type(module).__name__} ({hint})")


def _nonlinear_act(module) -> tuple[str, dict]:
    """The ONNX operator (and attributes) of a Brevitas `QuantNonLinearActLayer`."""
    from torch import nn

    impl = type(module.act_quant.fused_activation_quant_proxy.activation_impl)
    if impl is nn.Hardswish:
        return "HardSwish", {}
    if impl is nn.Hardsigmoid:
        return "HardSigmoid", {"alpha": float(np.float32(1.0 / 6.0))}
    raise UnsupportedGraph(f"activation {impl.__name__}")


def _broadcast(*shapes) -> tuple[int, ...]:
    return tuple(int(d) for d in np.broadcast_shapes(*shapes))


def _function(w: QdqWriter, fn, args: tuple, kwargs: dict, name: str):
    """A traced function call, its tensor arguments already the writer's names."""
    import torch
    import torch.nn.functional as F

    out = write_layout(w, fn, args, kwargs, name)
    if out is not None:
        return out

    if fn in (operator.add, operator.iadd, torch.add, operator.mul, torch.mul) and \
            len(args) == 2 and not kwargs and all(isinstance(a, str) for a in args):
        op = "Mul" if fn in (operator.mul, torch.mul) else "Add"
        return w.node(op, list(args), _broadcast(*(w.shape[a] for a in args)), name)
    if fn is getattr and args[1] == "shape":
        return w.shape[args[0]]
    if fn is operator.getitem and isinstance(args[0], tuple):
        return args[0][args[1]]
    if fn is F.interpolate and not kwargs.get("antialias"):
        return _interpolate(w, args[0], kwargs.get("size"), kwargs.get("scale_factor"),
                            kwargs.get("mode", "nearest"), kwargs.get("align_corners"),
                            kwargs.get("recompute_scale_factor"), name)
    if fn is torch.cat:
        parts = list(kwargs.get("tensors", args[0] if args else []))
        dim = kwargs.get("dim", args[1] if len(args) > 1 else 0)
        shape = list(w.shape[parts[0]])
        shape[dim] = sum(w.shape[p][dim] for p in parts)
        out = w.node("Concat", parts, shape, name, axis=dim)
        scales = {w.scale.get(p) for p in parts}
        if len(scales) == 1 and None not in scales:  # aligned inputs: the concat stays
            w.scale[out] = scales.pop()               # dequantized with their scale
        return out
    raise UnsupportedGraph(f"function {getattr(fn, '__name__', fn)} ({name})")


def _model(w: QdqWriter, output, input_shape):
    from onnx import TensorProto, helper

    if not isinstance(output, str) or output not in w.scale:
        raise UnsupportedGraph("the output is not a dequantized tensor")
    graph = helper.make_graph(
        w.nodes, "subnet",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, list(input_shape))],
        [helper.make_tensor_value_info(output, TensorProto.FLOAT, list(w.shape[output]))],
        initializer=w.inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                             producer_name="qanas.cost.subnet_qdq", ir_version=8)


def qcdq_from_graph(qmodel, input_shape: tuple[int, ...]):
    """The QCDQ `onnx.ModelProto` of a calibrated `quantize_model` result (see module doc).

    Args:
        qmodel: the `torch.fx.GraphModule` of `qanas.quant.quantize_model`, calibrated.
        input_shape: the NCHW shape of its one input.

    Raises:
        UnsupportedGraph: a node or quantizer outside the supported scope.
    """
    import brevitas.nn as qnn
    from brevitas.nn.quant_layer import QuantNonLinearActLayer
    from torch import nn
    from torch.fx.node import map_aggregate

    acts = {qnn.QuantReLU: "Relu", qnn.QuantSigmoid: "Sigmoid"}
    w = QdqWriter()
    env: dict[str, object] = {}
    output = None

    def resolve(a):
        return env[a.name] if hasattr(a, "name") and hasattr(a, "op") else a

    for node in qmodel.graph.nodes:
        arg = list(map_aggregate(node.args, resolve))
        if node.op == "placeholder":
            env[node.name] = "input"
            w.shape["input"] = tuple(input_shape)
        elif node.op == "output":
            output = arg[0]
        elif node.op == "call_module":
            module = qmodel.get_submodule(node.target)
            x = arg[0]
            if isinstance(module, qnn.QuantConv2d):
                env[node.name] = _conv(w, module, x, node.name)
            elif type(module) is qnn.QuantIdentity:
                scale, signed = _proxy_params(module.act_quant)
                env[node.name] = w.quant_dequant(x, scale, signed, node.name)
            elif type(module) in acts or isinstance(module, QuantNonLinearActLayer):
                op, attrs = acts.get(type(module)), {}
                if op is None:
                    op, attrs = _nonlinear_act(module)
                scale, signed = _proxy_params(module.act_quant)
                y = w.node(op, [x], w.shape[x], f"{node.name}_act", **attrs)
                env[node.name] = w.quant_dequant(y, scale, signed, node.name)
            elif type(module) is nn.Identity:
                env[node.name] = x
            else:
                env[node.name] = _module(w, module, x, node.name)
        elif node.op == "call_function":
            env[node.name] = _function(w, node.target, tuple(arg),
                                       dict(map_aggregate(node.kwargs, resolve)), node.name)
        else:
            raise UnsupportedGraph(f"fx node kind {node.op}")
    return _model(w, output, input_shape)


def _module_of(target):
    """The module a lean node calls (its bound method's owner, or the module itself)."""
    return getattr(target, "__self__", target)


def _brevitas_scale(group):
    """A lean `ScaleGroup`'s scale as Brevitas computes it: the averaged statistic over
    the threshold, floored at `scaling_min_val` (1e-10) before *and after* the division.

    `ScaleGroup.scale` leaves out the second floor, so a tensor whose values vanish
    (deep in an untrained, seeded subnet) gets 1e-10 / threshold instead of Brevitas's
    1e-10; equal for every other statistic.
    """
    import torch

    from qanas.quant.fake_quant import SCALING_MIN_VAL

    if group.value is None:
        raise UnsupportedGraph("a scale group that was never calibrated")
    stat = torch.clamp(group.value, min=SCALING_MIN_VAL)
    return torch.clamp(stat / group.threshold, min=SCALING_MIN_VAL).detach()


_LEAN_ACTS = {"relu": ("Relu", {}), "sigmoid": ("Sigmoid", {}), "hardswish": ("HardSwish", {}),
              "hardsigmoid": ("HardSigmoid", {"alpha": float(np.float32(1.0 / 6.0))})}


def qcdq_from_lean(lean, input_shape: tuple[int, ...]):
    """The same graph as `qcdq_from_graph`, from `qanas.quant.quantize_fast`'s model.

    `QuantGraphModel` places the same quantizers as `quantize_model`, shares the same
    scales and calibrates them bit for bit alike (`tests/qanas/quant/test_quant_graph.py`), without
    building a Brevitas module: no Brevitas time at all.

    Args:
        lean: a calibrated `qanas.quant.quant_model.QuantGraphModel`.
        input_shape: the NCHW shape of its one input.

    Raises:
        UnsupportedGraph: a node or quantizer outside the supported scope.
    """
    from torch.fx.node import map_aggregate

    from qanas.quant.fake_quant import weight_scale
    from qanas.quant.quant_graph import QNode

    spec = lean.spec
    if (spec.act_bits, spec.weight_bits, spec.bias_bits) != (8, 8, 32) or \
            not spec.weight_per_channel:
        raise UnsupportedGraph("a quantization spec other than int8 per channel, int32 bias")
    nodes = lean.graph.nodes
    w = QdqWriter()
    env: dict[int, object] = {}
    output = None

    def resolve(a):
        return env[id(a)] if isinstance(a, QNode) else a

    for node in nodes:
        args = tuple(map_aggregate(node.args, resolve))
        kind = node.kind
        if kind == "input":
            out = "input"
            w.shape[out] = tuple(input_shape)
        elif kind == "output":
            output = args[0]
            continue
        elif kind == "conv":
            conv = node.conv
            scale = weight_scale(conv.weight, 8, True, spec.narrow_range_weights)
            high = 127
            low = -high if spec.narrow_range_weights else -128
            codes = (conv.weight / scale).round().clamp(low, high)
            bias = None if conv.bias is None else conv.bias.detach().numpy()
            out = _write_conv(w, args[0], codes.detach().numpy(), scale.detach().numpy(),
                              spec.narrow_range_weights, bias, conv.stride, conv.padding,
                              conv.dilation, conv.groups, node.name)
        elif kind in ("act", "q"):
            quant = node.quant
            x = args[0]
            if quant.act is not None:
                op, attrs = _LEAN_ACTS.get(getattr(quant.act, "__name__", ""), (None, None))
                if op is None:
                    raise UnsupportedGraph(f"activation {quant.act}")
                x = w.node(op, [x], w.shape[x], f"{node.name}_act", **attrs)
            quantizer = quant.quantizer
            if quantizer.bits != 8:
                raise UnsupportedGraph("activation quantizer other than 8 bits")
            scale = np.float32(_brevitas_scale(quantizer.group).reshape(()))
            out = w.quant_dequant(x, scale, quantizer.signed, node.name)
        elif kind == "pp":
            if type(_module_of(node.target)).__name__ != "Identity":
                raise UnsupportedGraph(f"module {type(_module_of(node.target)).__name__}")
            out = args[0]
        elif kind in ("pool", "softmax"):
            out = _module(w, _module_of(node.target), args[0], node.name)
        else:
            out = _function(w, node.target, args, dict(map_aggregate(node.kwargs, resolve)),
                            node.name)
        env[id(node)] = out
    return _model(w, output, input_shape)
