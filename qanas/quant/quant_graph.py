"""Where a static subnet is quantized: `quantize_model`'s decisions, without building Brevitas layers.

`plan_quant_graph(model, spec)` traces a float subnet with torch.fx into a small graph
of `QNode`s, folds each BatchNorm into its conv, and then replays, on that graph, the
passes `quantize_model` runs through Brevitas, in the same order and with the same
rules:

1. `preprocess_for_quantize`: ReLU6 becomes ReLU, BatchNorm is merged;
2. `quantize_model`'s requantizers after products (elementwise and matrix), resizes,
   average pools, softmax, convs feeding Sigmoid/Hardsigmoid/Hardswish or (through
   reshapes and transposes) a matrix product, and the output (unsigned where provably
   non-negative);
3. Brevitas `quantize`: the input quantizer, activation quantizers, one output
   quantizer after each add whose users are not quantizing, the residual handler that
   aligns the inputs of every add (a shared scale) and concat (a shared quantizer,
   sign included) until all are aligned, and the layer handler's output and input
   quantizers of each conv.

Where Brevitas shares a module, `scaling_impl` or `tensor_quant`, the graph shares the
`QuantModule`, `ScaleGroup` or `ActQuantizer`. The result is evaluated by
`qanas.quant.quant_model.QuantGraphModel`; `tests/qanas/quant/test_quant_graph.py` checks the
quantization points and their sharing against Brevitas on subnets of every space.

Graphs with anything outside this vocabulary raise `UnsupportedGraph`; callers then
use `quantize_model`.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.fx.node import map_aggregate

from qanas.quant.fake_quant import ActQuantizer, new_act_quantizer
from qanas.quant.spec import QuantSpec


class UnsupportedGraph(Exception):
    """The subnet has an op or pattern the lean quantized graph does not model."""


@dataclass
class ConvParams:
    """A conv with its BatchNorm folded in (float weight and bias) and its geometry."""

    weight: torch.Tensor
    bias: torch.Tensor | None
    stride: tuple
    padding: tuple
    dilation: tuple
    groups: int


class QuantModule:
    """One Brevitas quantizing module (QuantIdentity or quantized activation) instance.

    `act` is the activation function (None for an identity); `quantizer` the
    Brevitas `tensor_quant` it applies. Replacing an instance (Brevitas's
    `ModuleInstanceToModuleInstance`) swaps it in every node that calls it.
    """

    __slots__ = ("act", "quantizer")

    def __init__(self, act, quantizer: ActQuantizer):
        self.act = act
        self.quantizer = quantizer


class QNode:
    """One node: `kind` is input, conv, act, q, add, cat, mul, matmul, interp, pool, softmax,
    pp, fn or output.

    `args`/`kwargs` hold other `QNode`s where the traced graph had nodes; `target`
    is the function or module called; `quant` the `QuantModule` of act and q nodes;
    `conv` the folded conv of conv nodes; `meta` what the rules need to know of an act.
    """

    __slots__ = ("kind", "name", "target", "args", "kwargs", "quant", "conv", "meta", "_inputs")

    def __init__(self, kind: str, name: str, target=None, args=(), kwargs=None,
                 quant: QuantModule | None = None, conv: ConvParams | None = None):
        self.kind, self.name, self.target = kind, name, target
        self.args, self.kwargs = tuple(args), dict(kwargs or {})
        self.quant, self.conv = quant, conv
        self.meta: dict = {}
        self._inputs: list[QNode] | None = None

    def inputs(self) -> list[QNode]:
        """The distinct `QNode`s in args then kwargs, in order (fx's `all_input_nodes`)."""
        if self._inputs is not None:
            return self._inputs
        found: dict[int, QNode] = {}

        def visit(a):
            if isinstance(a, QNode):
                found.setdefault(id(a), a)
            return a

        map_aggregate(self.args, visit)
        map_aggregate(self.kwargs, visit)
        self._inputs = list(found.values())
        return self._inputs

    def replace_input(self, old: QNode, new: QNode) -> None:
        """Makes every reference to `old` in args/kwargs point to `new`."""
        swap = lambda a: new if a is old else a  # noqa: E731
        self.args = tuple(map_aggregate(self.args, swap))
        self.kwargs = dict(map_aggregate(self.kwargs, swap))
        self._inputs = None

    def __repr__(self) -> str:
        return f"QNode({self.kind} {self.name})"


_ADD = (operator.add, operator.iadd, torch.add)
_MUL = (operator.mul, torch.mul)
_SHAPE_FUNCTIONS = (getattr, operator.getitem, torch.narrow)
_RESHAPE_FUNCTIONS = (torch.flatten, torch.reshape, torch.transpose)
"""Layout functions Brevitas looks through when it aligns scales (`torch.narrow`, a
slice, is not one of them: it is an "fn" node that Brevitas requantizes after)."""
_ACTS = {nn.ReLU: torch.relu, nn.ReLU6: torch.relu, nn.Sigmoid: torch.sigmoid,
         nn.Hardsigmoid: F.hardsigmoid, nn.Hardswish: F.hardswish}
_NONNEG_ACTS = (nn.ReLU, nn.ReLU6, nn.Sigmoid, nn.Hardsigmoid)
_FLOAT_INPUT_ACTS = (nn.Sigmoid, nn.Hardsigmoid, nn.Hardswish)
_PRECISION_PRESERVING = (nn.Identity, nn.MaxPool2d, nn.Dropout, nn.Dropout2d)
_POOLS = (nn.AvgPool2d, nn.AdaptiveAvgPool2d)
_IDENTITY = nn.Identity()


class QuantGraph:
    """The quantized graph of one subnet: nodes in execution order, and the spec."""

    def __init__(self, nodes: list[QNode], spec: QuantSpec):
        self.nodes = nodes
        self.spec = spec
        self._counter = 0
        self._users: dict[int, list[QNode]] = {id(n): [] for n in nodes}
        for n in nodes:
            for i in n.inputs():
                self._users[id(i)].append(n)

    # -- graph editing (fx semantics) ------------------------------------------------
    def users(self, node: QNode) -> list[QNode]:
        """Nodes that take `node` as an input (kept current by `insert_after`)."""
        return list(self._users[id(node)])

    def insert_after(self, node: QNode, quant: QuantModule, exclude=()) -> QNode:
        """Brevitas's `InsertModuleCallAfter`: a q node after `node`, taking over its users."""
        self._counter += 1
        q = QNode("q", f"{node.name}_q{self._counter}", args=(node,), quant=quant)
        moved, kept = [], []
        for user in self._users[id(node)]:
            if any(user is e for e in exclude):
                kept.append(user)
            else:
                user.replace_input(node, q)
                moved.append(user)
        self._users[id(node)] = [*kept, q]
        self._users[id(q)] = moved
        self.nodes.insert(self.nodes.index(node) + 1, q)
        return q

    def replace_quant_module(self, old: QuantModule, new: QuantModule) -> None:
        """Brevitas's `ModuleInstanceToModuleInstance`: `new` wherever `old` was called."""
        for n in self.nodes:
            if n.quant is old:
                n.quant = new

    # -- quantizer factories -----------------------------------------------------------
    def new_quantizer(self, signed: bool) -> ActQuantizer:
        """A fresh per-tensor activation quantizer of the spec's bits and percentile."""
        return new_act_quantizer(signed, self.spec.act_bits, self.spec.act_percentile)

    def signed_identity(self) -> QuantModule:
        """Brevitas's `quant_identity_map` entry (always signed, see `quant_maps`)."""
        return QuantModule(None, self.new_quantizer(True))


# ---------------------------------------------------------------------------------------
# Tracing and preprocessing
# ---------------------------------------------------------------------------------------

def _fold(conv: nn.Conv2d, bn: nn.BatchNorm2d | None) -> ConvParams:
    """Brevitas's `merge_bn` on copies: weight x gamma / sqrt(var + eps), bias folded."""
    weight = conv.weight.detach().clone()
    bias = None if conv.bias is None else conv.bias.detach().clone()
    if bn is not None:
        from brevitas.nn.utils import mul_add_from_bn

        mul, add = mul_add_from_bn(bn.running_mean, bn.running_var, bn.eps,
                                   bn.weight.detach().clone(), bn.bias.detach().clone())
        weight.mul_(mul.view(-1, 1, 1, 1))
        if bias is None:
            bias = add.detach().clone()
        else:
            bias.mul_(mul)
            bias.add_(add)
    return ConvParams(weight, bias, conv.stride, conv.padding, conv.dilation, conv.groups)


def _trace(model: nn.Module) -> list[QNode]:
    """Traced nodes of `model`, with BatchNorm folded and module calls classified.

    Only the fx graph is needed, not a `GraphModule` (whose Python code generation
    and compilation would cost a quarter of the tracing).
    """
    from torch.fx import Tracer

    try:
        fx_graph = Tracer().trace(model)
    except Exception as exc:  # noqa: BLE001 - any tracing failure: use the Brevitas path
        raise UnsupportedGraph(f"not traceable: {exc}") from exc
    mapping: dict = {}
    nodes: list[QNode] = []
    users = {n: list(n.users) for n in fx_graph.nodes}
    pending_bn: dict = {}
    for fx_node in fx_graph.nodes:
        args = map_aggregate(fx_node.args, lambda a: mapping.get(a, a))
        kwargs = map_aggregate(fx_node.kwargs, lambda a: mapping.get(a, a))
        if fx_node.op == "placeholder":
            node = QNode("input", fx_node.name)
        elif fx_node.op == "output":
            node = QNode("output", fx_node.name, args=args)
        elif fx_node.op == "call_module":
            module = model.get_submodule(fx_node.target)
            node = _module_node(fx_node, module, args, users, pending_bn, mapping)
            if node is None:  # a folded BatchNorm: its users read the conv
                continue
        elif fx_node.op == "call_function":
            node = _function_node(fx_node, args, kwargs)
        else:
            raise UnsupportedGraph(f"{fx_node.op} {fx_node.target}")
        mapping[fx_node] = node
        nodes.append(node)
    for conv_node, conv in pending_bn.values():  # convs without a BatchNorm
        conv_node.conv = _fold(conv, None)
    return nodes


def _module_node(fx_node, module, args, users, pending_bn, mapping) -> QNode | None:
    if isinstance(module, nn.Conv2d):
        if module.padding_mode != "zeros" or isinstance(module.padding, str):
            raise UnsupportedGraph(f"conv padding {module.padding!r}/{module.padding_mode}")
        node = QNode("conv", fx_node.name, args=args)  # its `conv` is folded with its BatchNorm
        node.meta = {"module": fx_node.target}  # the name per-layer weight bits are keyed by
        pending_bn[fx_node] = (node, module)
        return node
    if isinstance(module, nn.BatchNorm2d):
        source = fx_node.args[0]
        if source not in pending_bn or len(users[source]) != 1 or len(fx_node.args) != 1:
            raise UnsupportedGraph(f"BatchNorm {fx_node.target} does not follow a conv")
        conv_node, conv = pending_bn.pop(source)
        conv_node.conv = _fold(conv, module)
        mapping[fx_node] = conv_node
        return None
    for cls, fn in _ACTS.items():
        if type(module) is cls:
            node = QNode("act", fx_node.name, target=fn, args=args)
            node.meta = {"nonneg": isinstance(module, _NONNEG_ACTS),
                           "float_input": isinstance(module, _FLOAT_INPUT_ACTS),
                           "signed_act": isinstance(module, nn.Hardswish)}
            return node
    if isinstance(module, _PRECISION_PRESERVING):
        # Brevitas removes stochastic modules: a Dropout is an identity in either mode.
        # `forward`, not the module: hooks (QAT's observers) are not part of the int8 graph.
        stateless = _IDENTITY if isinstance(module, (nn.Dropout, nn.Dropout2d)) else module
        return QNode("pp", fx_node.name, target=stateless.forward, args=args)
    if isinstance(module, _POOLS):
        return QNode("pool", fx_node.name, target=module.forward, args=args)
    if type(module) is nn.Softmax:
        return QNode("softmax", fx_node.name, target=module.forward, args=args)
    raise UnsupportedGraph(f"module {type(module).__name__}")


def _function_node(fx_node, args, kwargs) -> QNode:
    target = fx_node.target
    if target in _ADD:
        kind = "add"
    elif target is torch.cat:
        kind = "cat"
    elif target in _MUL:
        kind = "mul"
    elif target is torch.matmul:
        kind = "matmul"
    elif target is F.interpolate:
        kind = "interp"
    elif target in _SHAPE_FUNCTIONS or target in _RESHAPE_FUNCTIONS:
        kind = "fn"
    else:
        raise UnsupportedGraph(f"function {getattr(target, '__name__', target)}")
    return QNode(kind, fx_node.name, target=target, args=args, kwargs=kwargs)


# ---------------------------------------------------------------------------------------
# quantize_model's requantizers (qanas.quant.brevitas_quant._insert_requantizers)
# ---------------------------------------------------------------------------------------

def _nonnegative(node: QNode, memo: dict) -> bool:
    key = id(node)
    if key in memo:
        return memo[key]
    memo[key] = False
    result = False
    if node.kind == "act":
        result = node.meta["nonneg"]
    elif node.kind == "softmax":
        result = True
    elif node.kind in ("pp", "pool", "mul", "add", "cat", "interp") or (
            node.kind == "fn" and node.target in _RESHAPE_FUNCTIONS):
        result = all(_nonnegative(n, memo) for n in node.inputs())
    memo[key] = result
    return result


def _through_layout(node):
    """The node whose value `node` reshapes/transposes (`node` itself if it is no layout op)."""
    while isinstance(node, QNode) and node.kind == "fn" and node.target in _RESHAPE_FUNCTIONS:
        node = node.args[0]
    return node


def _insert_requantizers(graph: QuantGraph) -> None:
    spec = graph.spec
    memo: dict = {}
    todo: list[tuple[QNode, bool]] = []
    for node in graph.nodes:
        if node.kind == "matmul":  # int8 operands: a conv feeding one is requantized
            for operand in node.args[:2]:
                producer = _through_layout(operand)
                if isinstance(producer, QNode) and producer.kind == "conv" and not any(
                        n is producer for n, _ in todo):
                    todo.append((producer, False))  # a conv output is never provably >= 0
        if node.kind in ("mul", "matmul", "interp", "pool", "softmax"):
            todo.append((node, not spec.act_signed and _nonnegative(node, memo)))
        elif node.kind == "conv" and any(u.kind == "act" and u.meta["float_input"]
                                         for u in graph.users(node)):
            todo.append((node, False))
    output = graph.nodes[-1]
    result = output.args[0]
    if not isinstance(result, QNode):
        raise UnsupportedGraph("the model must return a single tensor")
    if not (any(n is result for n, _ in todo) or result.kind == "act"):
        todo.append((result, not spec.act_signed and _nonnegative(result, memo)))
    for node, unsigned in todo:
        graph.insert_after(node, QuantModule(None, graph.new_quantizer(not unsigned)))


# ---------------------------------------------------------------------------------------
# Brevitas quantize (brevitas.graph.quantize_impl), pass by pass
# ---------------------------------------------------------------------------------------

def _has_act_quant(node: QNode) -> bool:
    return node.kind in ("q", "act")


def _in_list(quant: QuantModule, found: list, same_sign: bool) -> bool:
    for m in found:
        if m is None:
            continue
        if same_sign and m.quantizer is quant.quantizer:
            return True
        if not same_sign and m.quantizer.group is quant.quantizer.group:
            return True
    return False


def _collect_aligned(node: QNode, found: list, same_sign: bool) -> None:
    for inp in node.inputs():
        if inp.kind == "pp":
            _collect_aligned(inp, found, same_sign)
        elif _has_act_quant(inp):
            if not _in_list(inp.quant, found, same_sign):
                found.append(inp.quant)
        elif inp.kind in ("conv", "pool"):
            found.append(None)
        elif inp.kind == "fn" and inp.target in _RESHAPE_FUNCTIONS:
            _collect_aligned(inp, found, same_sign)
        elif inp.kind == "cat":
            _collect_aligned(inp, found, True)
        elif inp.kind == "add":
            _collect_aligned(inp, found, False)
        elif inp.kind != "input":
            found.append(None)


def _aligned(node: QNode, same_sign: bool) -> bool:
    """Brevitas's `are_inputs_quantized_and_aligned`."""
    found: list = []
    _collect_aligned(node, found, same_sign)
    return None not in found and len(found) <= 1


def _act_handler(graph: QuantGraph) -> None:
    for node in graph.nodes:
        if node.kind == "act":
            signed = graph.spec.act_signed or node.meta["signed_act"]
            node.quant = QuantModule(node.target, graph.new_quantizer(signed))


def _output_quant(graph: QuantGraph, node: QNode) -> None:
    """Brevitas's `output_quant_handler`: one signed quantizer after `node` if a user needs it."""
    if any(not _has_act_quant(u) for u in graph.users(node)):
        graph.insert_after(node, graph.signed_identity())


def _align_inputs(graph: QuantGraph, node: QNode, shared: QuantModule, align_sign: bool) -> None:
    """Brevitas's `recursive_input_handler` with `align_input_quant`."""
    for inp in node.inputs():
        if inp.kind == "pp":
            _align_inputs(graph, inp, shared, align_sign)
        elif inp.kind == "q":
            graph.replace_quant_module(inp.quant, shared)
        elif inp.kind == "act":
            own = inp.quant
            quantizer = (shared.quantizer if align_sign else
                         ActQuantizer(shared.quantizer.group, own.quantizer.signed,
                                      own.quantizer.bits))
            graph.replace_quant_module(own, QuantModule(own.act, quantizer))
        elif inp.kind == "fn" and inp.target in _RESHAPE_FUNCTIONS:
            _align_inputs(graph, inp, shared, align_sign)
        elif inp.kind == "cat":
            _align_inputs(graph, inp, shared, True)
        else:
            graph.insert_after(inp, shared)


def _residual_handler(graph: QuantGraph) -> None:
    for _ in range(10_000):
        for node in graph.nodes:
            if node.kind in ("add", "cat") and not _aligned(node, node.kind == "cat"):
                _align_inputs(graph, node, graph.signed_identity(), node.kind == "cat")
                break
        else:
            return
    raise UnsupportedGraph("residual alignment did not converge")


def _layer_handler(graph: QuantGraph) -> None:
    index = 0
    while index < len(graph.nodes):
        node = graph.nodes[index]
        if node.kind == "conv":
            _output_quant(graph, node)
            if not _aligned(node, False):
                source = node.inputs()[0]
                others = [u for u in graph.users(source) if u is not node]
                graph.insert_after(source, graph.signed_identity(), exclude=others)
        index = graph.nodes.index(node) + 1


def input_quantizer(node: QNode) -> ActQuantizer:
    """The quantizer whose scale the (quantized) input of a conv carries."""
    source = node.inputs()[0]
    while True:
        if _has_act_quant(source):
            return source.quant.quantizer
        if source.kind == "pp" or source.kind == "cat":
            source = source.inputs()[0]
            continue
        raise UnsupportedGraph(f"conv {node.name} reads an unquantized {source.kind}")


def plan_quant_graph(model: nn.Module, spec: QuantSpec | None = None) -> QuantGraph:
    """The quantized graph `quantize_model(model, spec)` would build, as a `QuantGraph`.

    Args:
        model: a static, traceable float model (an extracted subnet); its BatchNorm
            running statistics are folded into copies of the weights, so neither the
            model nor its train/eval mode is changed.
        spec: the quantization format (default `QuantSpec()`).

    Raises:
        UnsupportedGraph: for anything outside the vocabulary of our search spaces.
    """
    spec = spec or QuantSpec()
    graph = QuantGraph(_trace(model), spec)
    if sum(n.kind == "input" for n in graph.nodes) != 1:
        raise UnsupportedGraph("the model must take a single input")
    _insert_requantizers(graph)
    for node in [n for n in graph.nodes if n.kind == "input"]:
        graph.insert_after(node, graph.signed_identity())
    _act_handler(graph)
    for node in [n for n in graph.nodes if n.kind == "add"]:
        _output_quant(graph, node)
    _residual_handler(graph)
    _layer_handler(graph)
    for node in graph.nodes:
        if node.kind == "conv":
            input_quantizer(node)  # raises now rather than in the first forward
    return graph


__all__ = ["ConvParams", "QNode", "QuantGraph", "QuantModule", "UnsupportedGraph",
           "input_quantizer", "plan_quant_graph"]
