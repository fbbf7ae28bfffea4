"""Activation buffers of a subnet as the int8 compiler would plan them, from shapes alone.

`subnet_kernels` traces the extracted subnet with ``torch.fx`` (the supernet is
built on the ``meta`` device, so no weights are allocated), propagates shapes
with closed-form rules (no tensor is computed) and groups the graph into fused
kernels the way the compiler does after ``relax.get_pipeline("zero")``:

* **conv kernels**: a ``Conv2d`` absorbs the BatchNorm (folded), the activation
  (ReLU / ReLU6 / sigmoid / hard-swish become clip bounds or a LUT in the
  requantization) and every further elementwise op (add, mul) whose *main*
  input is that kernel's output and has no other reader. This is TVM's
  OutEWiseFusable rule; a residual add thus lands in the projection conv's
  kernel, which also reads the skip tensor.
* **kernels of their own**: pooling, global pooling, resize (``interpolate``),
  concat, and any elementwise op whose main input has several readers.
* **aliases**: ``Identity`` and ``Dropout`` produce no kernel and no buffer.

Each kernel writes one int8 buffer (1 byte per element). A kernel executes at the
position of its last fused op (Relax emits a fused call where its group ends),
which gives the steps. A buffer lives from its writer's step to the last step
that reads it, the graph input from step 0, the graph output to the last step:
exactly `compiler.plan.ExecutionPlan.lifetimes` for the compiled ONNX model.

What the estimate leaves out: kernel scratch (``TVMBackendAllocWorkspace``),
which depends on the generated TIR, and the float→int8 input conversion when a
model keeps float I/O. `tests/test_search_hw.py` measures the difference against
`compiler.driver.compile_model`.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass, field
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import fx, nn

from compiler.memory import BufferLifetime
from qanas.errors import ConfigError
from qanas.space.base import SearchSpace, SubnetConfig

ALIAS_MODULES = (nn.Identity, nn.Dropout, nn.Dropout2d)
ELEMENTWISE_MODULES = (nn.BatchNorm2d, nn.ReLU, nn.ReLU6, nn.Hardtanh, nn.Sigmoid,
                       nn.Hardsigmoid, nn.Hardswish, nn.SiLU, nn.LeakyReLU)
ELEMENTWISE_FUNCTIONS = {operator.add, operator.mul, torch.add, torch.mul, F.relu, F.relu6,
                         F.hardtanh, F.hardswish, F.hardsigmoid, torch.sigmoid, torch.relu}


@dataclass
class Kernel:
    """One fused kernel: the ops it runs, the buffers it reads and the one it writes."""

    kind: str
    ops: list[str]
    out_shape: tuple[int, ...]
    reads: list[int] = field(default_factory=list)
    position: int = 0


@dataclass(frozen=True)
class _Tensor:
    """A traced value that is a tensor: the index of the kernel that writes it."""

    index: int


@dataclass(frozen=True)
class ConvInfo:
    """Shape facts of one conv, for flash and MAC counts."""

    name: str
    in_channels: int
    out_channels: int
    kernel: tuple[int, int]
    groups: int
    out_hw: tuple[int, int]


@dataclass(frozen=True)
class SubnetGraph:
    """A subnet reduced to fused kernels and int8 activation buffers.

    Attributes:
        kernels: kernel kind per step, e.g. ``("conv", "conv", "resize", ...)``.
        buffers: the planner's input (graph input, one buffer per kernel output).
        convs: every conv with its shapes (weights and biases for the flash estimate).
    """

    kernels: tuple[str, ...]
    buffers: tuple[BufferLifetime, ...]
    convs: tuple[ConvInfo, ...]


def _conv_out(size: int, k: int, s: int, p: int, d: int) -> int:
    return (size + 2 * p - d * (k - 1) - 1) // s + 1


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else tuple(v)


def _module_shape(mod: nn.Module, shape: tuple[int, ...], name: str) -> tuple[str, tuple]:
    """(kind, output shape) of a call_module node."""
    if isinstance(mod, ALIAS_MODULES):
        return "alias", shape
    if isinstance(mod, ELEMENTWISE_MODULES):
        return "elementwise", shape
    n, _, h, w = shape
    if isinstance(mod, nn.Conv2d):
        if isinstance(mod.padding, str):
            raise ConfigError(f"{name}: string padding {mod.padding!r} is not supported")
        k, s, p, d = (_pair(getattr(mod, a)) for a in ("kernel_size", "stride", "padding", "dilation"))
        return "conv", (n, mod.out_channels, _conv_out(h, k[0], s[0], p[0], d[0]),
                        _conv_out(w, k[1], s[1], p[1], d[1]))
    if isinstance(mod, nn.AdaptiveAvgPool2d | nn.AdaptiveMaxPool2d):
        oh, ow = _pair(mod.output_size)
        return "global_pool", (n, shape[1], oh or h, ow or w)
    if isinstance(mod, nn.AvgPool2d | nn.MaxPool2d):
        k, s, p = _pair(mod.kernel_size), _pair(mod.stride or mod.kernel_size), _pair(mod.padding)
        return "pool", (n, shape[1], _conv_out(h, k[0], s[0], p[0], 1), _conv_out(w, k[1], s[1], p[1], 1))
    raise ConfigError(
        f"{name}: no shape rule for {type(mod).__name__}; add it to qanas.search.graph "
        "(the compiler must also support it)"
    )


def _broadcast(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    return tuple(torch.broadcast_shapes(a, b))


def _numel(shape: tuple[int, ...]) -> int:
    out = 1
    for s in shape:
        out *= int(s)
    return out


def trace_kernels(gm: fx.GraphModule, input_shape: tuple[int, ...]
                  ) -> tuple[list[Kernel], list[ConvInfo], list[int]]:
    """Groups the nodes of `gm` into fused kernels (see the module docstring).

    Returns:
        (kernels; index 0 is the graph input), convs, indices of the output kernels.
    """
    kernels = [Kernel("input", ["input"], tuple(input_shape))]
    value: dict[fx.Node, object] = {}  # node -> _Tensor(kernel index) or a python value
    convs: list[ConvInfo] = []
    modules = dict(gm.named_modules())
    outputs: list[int] = []
    for pos, node in enumerate(gm.graph.nodes):
        if node.op == "placeholder":
            if any(isinstance(v, _Tensor) for v in value.values()):
                raise ConfigError("the subnet takes more than one input; expected one image batch")
            value[node] = _Tensor(0)
            continue
        if node.op == "output":
            flat = node.args[0] if isinstance(node.args[0], (tuple, list)) else [node.args[0]]
            outputs = [value[a].index for a in flat]
            continue
        args = fx.node.map_arg(node.args, value.__getitem__)
        kwargs = fx.node.map_arg(node.kwargs, value.__getitem__)
        tensor_in = [a for a in node.all_input_nodes if isinstance(value[a], _Tensor)]
        in_ids = [value[a].index for a in tensor_in]
        if node.op == "call_function" and node.target in (getattr, operator.getitem):
            obj = args[0]
            if isinstance(obj, _Tensor):
                if node.target is not getattr or args[1] != "shape":
                    raise ConfigError(f"{node.name}: tensor access {node.target} {args[1:]} is "
                                      "not supported; only `.shape` is")
                value[node] = torch.Size(kernels[obj.index].out_shape)
            else:
                value[node] = node.target(*args)
            continue
        if node.op == "call_module":
            mod = modules[node.target]
            kind, shape = _module_shape(mod, kernels[in_ids[0]].out_shape, node.name)
            if kind == "conv":
                convs.append(ConvInfo(node.target, mod.in_channels, mod.out_channels,
                                      _pair(mod.kernel_size), mod.groups, shape[2:]))
        elif node.target in ELEMENTWISE_FUNCTIONS:
            shape = kernels[in_ids[0]].out_shape
            for other in in_ids[1:]:
                shape = _broadcast(shape, kernels[other].out_shape)
            kind = "elementwise"
        elif node.target is F.interpolate:
            kind, (n, c, h, w) = "resize", kernels[in_ids[0]].out_shape
            size = kwargs.get("size", args[1] if len(args) > 1 else None)
            scale = kwargs.get("scale_factor", args[2] if len(args) > 2 else None)
            if size is not None:
                oh, ow = _pair(size) if isinstance(size, int) else tuple(size)
            elif scale is not None:
                sh, sw = (scale, scale) if isinstance(scale, (int, float)) else scale
                oh, ow = int(h * sh), int(w * sw)
            else:
                raise ConfigError(f"{node.name}: interpolate without size or scale_factor")
            shape = (n, c, int(oh), int(ow))
        elif node.target is torch.cat:
            dim = kwargs.get("dim", args[1] if len(args) > 1 else 0)
            parts = [kernels[t.index].out_shape for t in args[0]]
            shape = list(parts[0])
            shape[dim] = sum(p[dim] for p in parts)
            kind, shape = "concat", tuple(shape)
        else:
            raise ConfigError(
                f"{node.name}: no shape rule for {node.op} {node.target}; add it to "
                "qanas.search.graph (the compiler must also support it)"
            )
        if kind == "alias":
            value[node] = _Tensor(in_ids[0])
            continue
        if kind == "elementwise":
            main = _fusable_main(kernels, in_ids, tensor_in, shape, node, modules)
            if main is not None:
                k = kernels[main]
                k.ops.append(node.name)
                k.reads.extend(i for i in in_ids if i != main)
                k.position = pos
                value[node] = _Tensor(main)
                continue
        kernels.append(Kernel(kind, [node.name], tuple(shape), list(dict.fromkeys(in_ids)), pos))
        value[node] = _Tensor(len(kernels) - 1)
    return kernels, convs, outputs


def _readers(node: fx.Node, modules: dict[str, nn.Module]) -> set[fx.Node]:
    """Nodes that read the tensor of `node`, looking through aliases and ignoring `.shape`."""
    out: set[fx.Node] = set()
    for user in node.users:
        if user.op == "call_function" and user.target is getattr:
            continue
        if user.op == "call_module" and isinstance(modules[user.target], ALIAS_MODULES):
            out |= _readers(user, modules)
        else:
            out.add(user)
    return out


def _fusable_main(kernels: list[Kernel], in_ids: list[int], tensor_in: list[fx.Node],
                  shape: tuple[int, ...], node: fx.Node, modules: dict[str, nn.Module]
                  ) -> int | None:
    """The input kernel an elementwise op fuses into, or None (see the module docstring)."""
    for i, arg in zip(in_ids, tensor_in, strict=True):
        k = kernels[i]
        if k.kind not in ("conv", "elementwise") or k.out_shape != tuple(shape):
            continue
        if _readers(arg, modules) == {node}:
            return i
    return None


def kernels_to_buffers(kernels: list[Kernel], outputs: list[int],
                       bytes_per_element: int = 1) -> tuple[list[str], list[BufferLifetime]]:
    """Steps and `BufferLifetime`s of the fused kernels (kernel 0 is the graph input)."""
    order = sorted(range(1, len(kernels)), key=lambda i: kernels[i].position)
    step = {k: s for s, k in enumerate(order)}
    step[0] = 0
    last = {k: step[k] for k in step}
    for k in order:
        for r in kernels[k].reads:
            last[r] = max(last[r], step[k])
    final = len(order) - 1
    for o in outputs:
        last[o] = final
    buffers = [
        BufferLifetime(f"{'input' if k == 0 else f'k{step[k]}_out'}",
                       _numel(kernels[k].out_shape) * bytes_per_element, step[k], last[k])
        for k in [0, *order]
    ]
    return [kernels[k].kind for k in order], buffers


@lru_cache(maxsize=8)
def _meta_supernet(space_name: str, num_classes: int):
    from qanas.space import get_space

    with torch.device("meta"):
        return get_space(space_name).build_supernet(num_classes)


def trace_subnet(space: SearchSpace, cfg: SubnetConfig, num_classes: int) -> fx.GraphModule:
    """fx graph of the extracted subnet `cfg`, built on the meta device (no weights in memory)."""
    net = _meta_supernet(space.name, num_classes)
    with torch.device("meta"):
        subnet = net.extract(cfg)
    return fx.symbolic_trace(subnet)


def subnet_graph(space: SearchSpace, cfg: SubnetConfig, image_size: tuple[int, int],
                 num_classes: int, bytes_per_element: int = 1) -> SubnetGraph:
    """The fused kernels and int8 activation buffers of subnet `cfg` at `image_size`.

    Example:
        >>> g = subnet_graph(get_space("squeezenas-small"), cfg, (64, 128), 4)  # doctest: +SKIP
        >>> get_planner("greedy").plan(g.buffers).arena_bytes  # doctest: +SKIP
    """
    return module_graph(trace_subnet(space, cfg, num_classes), (1, 3, *image_size),
                        bytes_per_element)


def module_graph(module: nn.Module, input_shape: tuple[int, ...],
                 bytes_per_element: int = 1) -> SubnetGraph:
    """Fused kernels and activation buffers of any fx-traceable single-input model."""
    gm = module if isinstance(module, fx.GraphModule) else fx.symbolic_trace(module)
    kernels, convs, outputs = trace_kernels(gm, tuple(input_shape))
    kinds, buffers = kernels_to_buffers(kernels, outputs, bytes_per_element)
    return SubnetGraph(tuple(kinds), tuple(buffers), tuple(convs))
