"""Activation buffers of a subnet exactly as the int8 compiler plans them, from shapes alone.

`subnet_graph` traces the extracted subnet with ``torch.fx`` (the supernet is built
on the ``meta`` device, so no weights are allocated), propagates shapes with
closed-form rules and *lowers* every traced op to the kernels that
`compiler.driver.compile_model` emits for it after `qanas.quant.quantize_model`
(Brevitas PTQ) and `export_qdq`: the integer-lowering passes of `compiler.passes`,
then TVM's FuseOps inside ``relax.get_pipeline("zero")``. Each kernel writes one
buffer; `compiler.plan.build_plan` would give the same buffers, sizes and lifetimes,
so the planner (`compiler.memory`) returns the compiled arena. No TVM is run.

Zero points. Brevitas quantizes ReLU/ReLU6/Sigmoid/Hardsigmoid outputs unsigned
(uint8, zero point −128 once `CanonicalizeUint8` makes it int8), and the requantizer
after a product, resize or average pool unsigned when its inputs are non-negative;
the graph input, conv outputs without activation, add and concat outputs and
Hardswish are signed (zero point 0). ``act_signed=True`` (`QuantSpec.act_signed`) makes all signed.

Kernels per traced op (buffer dtype int8 unless said; ``k`` = the producing kernel):

==========================  ==============================================================
traced op                   compiler kernels (``plan.calls``)
==========================  ==============================================================
input                       the int8 input buffer (boundary quantize stripped)
Conv2d (+ folded BN)        ``pad`` (int8, padded shape, zero-point fill) first when the
                            input is unsigned and the conv pads (`LowerQuantizedConv2d`);
                            then ``fused_conv2d_..._cast``: conv + bias + requantize
BatchNorm2d, Identity,      nothing (folded into the conv / aliases)
Dropout
ReLU / ReLU6 / Hardtanh     nothing after a conv, add, mul or pool (clamp bounds of its
                            requantize); elsewhere as a LUT activation
Sigmoid / Hardsigmoid /     ``k`` also computes the int32 table index (its buffer becomes
Hardswish (LUT)             int32; a kernel of its own when ``k`` cannot take it), then
                            ``take`` (opaque) writes int8 (`LowerQuantizedUnaryToLUT`)
add / sub / mul             joins the kernel of its first input that still takes
                            element-wise ops (conv or element-wise kernel, single reader,
                            same shape); an element-wise producer always joins; a second
                            conv producer keeps its kernel and writes its operand product
                            (int64 ``M·(q − zp)`` for add/sub, int32 ``q − zp`` for mul);
                            otherwise an element-wise kernel of its own
AdaptiveAvgPool2d(1)        ``cast_sum`` (int32 [C,1,1]; an element-wise single-reader
                            producer joins it, a conv producer writes its output as int32),
                            then an element-wise requantize kernel
AvgPool2d                   ``pad`` when it pads (any zero point), then a depthwise conv
                            with an all-ones kernel + requantize (`LowerQuantizedAvgPool`)
MaxPool2d                   ``max_pool2d`` on int8 (conv-like fusion)
interpolate, bilinear       ``k`` writes ``to_int32(x) − zp`` (int32; a cast kernel of its
                            own when ``k`` cannot take it), ``take`` ×2 (rows, int32
                            [C,H,w]), ``multiply_multiply_add`` (int32), ``take`` ×2
                            (columns, int32 [C,H,W]), ``multiply_multiply_add`` +
                            requantize (int8) (`LowerQuantizedResize`)
interpolate, nearest        ``take`` (rows), ``take`` (columns), requantize kernel
torch.cat                   ``concatenate`` of int8 inputs (injective; the rescales of
                            inputs and single-reader element-wise producers join it);
                            its output is signed, so a padded conv after it gets no pad
==========================  ==============================================================

Fusion follows TVM's FuseOps on the lowered graph: a conv kernel
(OutEWiseFusable) takes every following element-wise op while its output has one
reader; element-wise kernels also fuse *forward* into a following element-wise
op, pad, concat or reduction; ``take`` (data-dependent gather) is opaque and fuses
with nothing; a pad or reduction never joins a conv. A kernel is emitted where its
last op is lowered (Relax emits a fused call where its group ends), which orders
the steps. A buffer lives from its writer's step to the last step that reads it,
the graph input from step 0, the graph output to the last step: exactly
`compiler.plan.ExecutionPlan.lifetimes`. Kernels have no scratch
(`compiler.codegen.schedule`), so there are no workspace buffers.

`tests/test_search_hw.py::test_estimate_against_compiled_arena` checks the result
against `compile_model` on squeezenas-small and mbv2-deeplab subnets (equal arenas).
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

# TVM's OpPatternKind of a kernel's anchor, as far as fusion is concerned (FuseOps).
OUT_EWISE, ELEMWISE, INJECTIVE, REDUCE, OPAQUE = (
    "out_ewise_fusable", "elemwise", "injective", "comm_reduce", "opaque")
_OPEN = (OUT_EWISE, ELEMWISE)  # may take further element-wise ops into their kernel

ALIAS_MODULES = (nn.Identity, nn.Dropout, nn.Dropout2d)
FOLDED_MODULES = (nn.BatchNorm2d,)
CLAMP_MODULES = (nn.ReLU, nn.ReLU6, nn.Hardtanh)
LUT_MODULES = (nn.Sigmoid, nn.Hardsigmoid, nn.Hardswish, nn.SiLU, nn.LeakyReLU)
# Activations whose Brevitas quantizer is unsigned (uint8, zero point -128 once int8).
UNSIGNED_MODULES = (nn.ReLU, nn.ReLU6, nn.Sigmoid, nn.Hardsigmoid)
CLAMP_FUNCTIONS = {F.relu: True, torch.relu: True, F.relu6: True, F.hardtanh: False}
LUT_FUNCTIONS = {torch.sigmoid: True, F.hardsigmoid: True, F.hardswish: False}
# Binary element-wise ops and the width (bytes) of the operand product a second conv
# input ends with when it cannot join the op's kernel (int64 for add/sub, int32 for mul).
BINARY_FUNCTIONS = {operator.add: 8, torch.add: 8, operator.sub: 8, torch.sub: 8,
                    operator.mul: 4, torch.mul: 4}


@dataclass
class Kernel:
    """One fused kernel (one ``call_tir`` of the compiled plan).

    Attributes:
        kind: ``input``, ``conv``, ``pad``, ``take``, ``sum``, ``elementwise``,
            ``concat`` or ``pool``.
        ops: the traced ops (and lowering steps, e.g. ``interpolate.rows``) it runs.
        out_shape: shape of the buffer it writes.
        reads: indices of the kernels whose buffers it reads.
        position: emission order (a kernel is emitted where its last op is lowered).
        pattern: TVM's fusion pattern of the group (decides what may still join it).
        elem_bytes: bytes per element of its output (1 = int8; 4 or 8 when a consumer's
            int32/int64 prologue was fused into it).
    """

    kind: str
    ops: list[str]
    out_shape: tuple[int, ...]
    reads: list[int] = field(default_factory=list)
    position: int = 0
    pattern: str = OPAQUE
    elem_bytes: int = 1


@dataclass(frozen=True)
class _Tensor:
    """A traced tensor: the kernel that writes it, and facts of its int8 quantization.

    ``unsigned``: quantized unsigned (zero point -128 as int8), so padded convs need a
    pad kernel. ``clampable``: its lowering folds a following ReLU into the clamp.
    """

    index: int
    unsigned: bool = False
    clampable: bool = False


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
    """A subnet reduced to fused kernels and activation buffers.

    Attributes:
        kernels: kernel kind per step, e.g. ``("conv", "pad", "conv", "take", ...)``.
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


def _numel(shape: tuple[int, ...]) -> int:
    out = 1
    for s in shape:
        out *= int(s)
    return out


def _readers(node: fx.Node, modules: dict[str, nn.Module]) -> set[fx.Node]:
    """Nodes that read the tensor of `node`, looking through aliases and ignoring `.shape`."""
    out: set[fx.Node] = set()
    for user in node.users:
        if user.op == "call_function" and user.target is getattr:
            continue
        if user.op == "call_module" and isinstance(modules[user.target],
                                                   ALIAS_MODULES + FOLDED_MODULES):
            out |= _readers(user, modules)
        else:
            out.add(user)
    return out


class _Lowering:
    """Builds the kernels of one fx graph (see the module docstring for the rules)."""

    def __init__(self, gm: fx.GraphModule, input_shape: tuple[int, ...], act_signed: bool):
        self.gm, self.act_signed = gm, act_signed
        self.modules = dict(gm.named_modules())
        self.kernels = [Kernel("input", ["input"], tuple(input_shape))]
        self.parent = [0]
        self.clock = 0
        self.value: dict[fx.Node, object] = {}
        self.convs: list[ConvInfo] = []
        self.outputs: list[int] = []

    # ---- kernel bookkeeping -------------------------------------------------------------
    def find(self, i: int) -> int:
        while self.parent[i] != i:
            self.parent[i] = self.parent[self.parent[i]]
            i = self.parent[i]
        return i

    def tick(self, k: int) -> int:
        self.clock += 1
        self.kernels[k].position = self.clock
        return k

    def new(self, kind: str, op: str, shape, reads, pattern: str, elem_bytes: int = 1) -> int:
        self.kernels.append(Kernel(kind, [op], tuple(int(s) for s in shape),
                                   [self.find(r) for r in reads], 0, pattern, elem_bytes))
        self.parent.append(len(self.kernels) - 1)
        return self.tick(len(self.kernels) - 1)

    def merge(self, src: int, dst: int) -> int:
        """Kernel `src` joins kernel `dst` (FuseOps puts them in one group)."""
        s, d = self.kernels[src], self.kernels[dst]
        d.ops[:0] = s.ops
        d.reads.extend(s.reads)
        if s.pattern == OUT_EWISE:
            d.pattern, d.kind = OUT_EWISE, s.kind
        self.parent[src] = dst
        return dst

    def kernel_of(self, node: fx.Node) -> int:
        return self.find(self.value[node].index)

    def fusable(self, arg: fx.Node, node: fx.Node, shape=None) -> int | None:
        """The kernel of `arg` if an element-wise consumer `node` may join it, else None.

        It may when the kernel still takes element-wise ops (a conv or element-wise
        group), `node` is the only reader of `arg`, and (for binary ops) no broadcast.
        """
        k = self.kernel_of(arg)
        kern = self.kernels[k]
        if kern.pattern not in _OPEN or _readers(arg, self.modules) != {node}:
            return None
        if shape is not None and kern.out_shape != tuple(shape):
            return None
        return k

    def int_prologue(self, arg: fx.Node, node: fx.Node, op: str, elem_bytes: int) -> int:
        """The kernel writing `arg` widened to int32 for `node` (``to_int(x) - zp``).

        Fused into the producer when it may take it, else a kernel of its own.
        """
        k = self.fusable(arg, node)
        if k is not None:
            self.kernels[k].elem_bytes = elem_bytes
            self.kernels[k].ops.append(op)
            return self.tick(k)
        return self.new("elementwise", op, self.kernels[self.kernel_of(arg)].out_shape,
                        [self.kernel_of(arg)], ELEMWISE, elem_bytes)

    def absorb_into(self, arg: fx.Node, node: fx.Node, patterns=(ELEMWISE,)) -> int | None:
        """Merges the single-reader element-wise producer of `arg` forward, or None."""
        k = self.kernel_of(arg)
        if self.kernels[k].pattern in patterns and _readers(arg, self.modules) == {node}:
            return k
        return None

    def pad(self, arg: fx.Node, node: fx.Node, padding: tuple[int, int]) -> int:
        """An int8 ``pad`` kernel (injective: an element-wise producer fuses into it)."""
        src = self.kernel_of(arg)
        n, c, h, w = self.kernels[src].out_shape
        shape = (n, c, h + 2 * padding[0], w + 2 * padding[1])
        k = self.new("pad", f"{node.name}.pad", shape, [src], INJECTIVE)
        producer = self.absorb_into(arg, node, (ELEMWISE, INJECTIVE))
        if producer is not None:
            self.kernels[k].reads = [r for r in self.kernels[k].reads if r != producer]
            self.merge(producer, k)
        return k

    def unsigned_act(self, unsigned: bool) -> bool:
        return unsigned and not self.act_signed

    # ---- ops ------------------------------------------------------------------------------
    def conv(self, node: fx.Node, mod: nn.Conv2d, x: _Tensor, arg: fx.Node) -> _Tensor:
        if isinstance(mod.padding, str):
            raise ConfigError(f"{node.name}: string padding {mod.padding!r} is not supported")
        k, s, p, d = (_pair(getattr(mod, a)) for a in ("kernel_size", "stride", "padding",
                                                        "dilation"))
        src = self.kernel_of(arg)
        n, _, h, w = self.kernels[src].out_shape
        shape = (n, mod.out_channels, _conv_out(h, k[0], s[0], p[0], d[0]),
                 _conv_out(w, k[1], s[1], p[1], d[1]))
        if x.unsigned and any(p):
            src = self.pad(arg, node, p)
        self.convs.append(ConvInfo(node.target, mod.in_channels, mod.out_channels, k,
                                   mod.groups, shape[2:]))
        return _Tensor(self.new("conv", node.name, shape, [src], OUT_EWISE), False, True)

    def clamp(self, node: fx.Node, x: _Tensor, arg: fx.Node, unsigned: bool) -> _Tensor:
        if x.clampable and self.fusable(arg, node) is not None:
            k = self.kernel_of(arg)
            self.kernels[k].ops.append(node.name)
            return _Tensor(k, self.unsigned_act(unsigned), True)
        return self.lut(node, arg, unsigned)

    def lut(self, node: fx.Node, arg: fx.Node, unsigned: bool) -> _Tensor:
        index = self.int_prologue(arg, node, f"{node.name}.index", 4)
        shape = self.kernels[index].out_shape
        return _Tensor(self.new("take", node.name, shape, [index], OPAQUE),
                       self.unsigned_act(unsigned))

    def global_pool(self, node: fx.Node, x: _Tensor, arg: fx.Node) -> _Tensor:
        n, c, _, _ = self.kernels[self.kernel_of(arg)].out_shape
        producer = self.absorb_into(arg, node)
        if producer is not None:  # an element-wise group fuses into the reduction
            k = self.new("sum", f"{node.name}.sum", (n, c, 1, 1), [], REDUCE, 4)
            self.merge(producer, k)
        else:
            k = self.fusable(arg, node)
            src = self.int_prologue(arg, node, f"{node.name}.cast", 4) if k is not None \
                else self.kernel_of(arg)
            k = self.new("sum", f"{node.name}.sum", (n, c, 1, 1), [src], REDUCE, 4)
        out = self.new("elementwise", f"{node.name}.requantize", (n, c, 1, 1), [k], ELEMWISE)
        return _Tensor(out, self.unsigned_act(x.unsigned), True)

    def avg_pool(self, node: fx.Node, mod: nn.AvgPool2d, x: _Tensor, arg: fx.Node) -> _Tensor:
        k, s, p = _pair(mod.kernel_size), _pair(mod.stride or mod.kernel_size), _pair(mod.padding)
        src = self.kernel_of(arg)
        n, c, h, w = self.kernels[src].out_shape
        if any(p):  # pads with the zero point whatever it is
            src = self.pad(arg, node, p)
        shape = (n, c, _conv_out(h, k[0], s[0], p[0], 1), _conv_out(w, k[1], s[1], p[1], 1))
        return _Tensor(self.new("pool", node.name, shape, [src], OUT_EWISE),
                       self.unsigned_act(x.unsigned), True)

    def max_pool(self, node: fx.Node, mod: nn.MaxPool2d, x: _Tensor, arg: fx.Node) -> _Tensor:
        k, s, p = _pair(mod.kernel_size), _pair(mod.stride or mod.kernel_size), _pair(mod.padding)
        n, c, h, w = self.kernels[self.kernel_of(arg)].out_shape
        shape = (n, c, _conv_out(h, k[0], s[0], p[0], 1), _conv_out(w, k[1], s[1], p[1], 1))
        return _Tensor(self.new("pool", node.name, shape, [self.kernel_of(arg)], OUT_EWISE),
                       x.unsigned)

    def binary(self, node: fx.Node, width: int, args: list[fx.Node]) -> _Tensor:
        shapes = [self.kernels[self.kernel_of(a)].out_shape for a in args]
        shape = tuple(torch.broadcast_shapes(*shapes))
        main, widened, reads = None, [], []
        for arg in dict.fromkeys(args):
            k = self.fusable(arg, node, shape)
            if k is not None and (main is None or ELEMWISE in (self.kernels[k].pattern,
                                                               self.kernels[main].pattern)):
                main = k if main is None else self.merge(k, main)
                continue
            if k is not None:  # a second conv: its kernel ends with its operand product
                widened.append(k)
            reads.append(self.kernel_of(arg))
        for k in widened:
            self.kernels[k].elem_bytes = width
            self.tick(k)
        if main is None:
            main = self.new("elementwise", node.name, shape, reads, ELEMWISE)
        else:
            self.kernels[main].ops.append(node.name)
            self.kernels[main].reads.extend(reads)
            self.tick(main)
        unsigned = width == 4 and all(self.value[a].unsigned for a in args)
        return _Tensor(main, self.unsigned_act(unsigned), True)

    def resize(self, node: fx.Node, x: _Tensor, arg: fx.Node, size, mode: str) -> _Tensor:
        n, c, h, w = self.kernels[self.kernel_of(arg)].out_shape
        oh, ow = size
        if mode == "nearest":
            rows = self.new("take", f"{node.name}.rows", (n, c, oh, w), [self.kernel_of(arg)],
                            OPAQUE)
            cols = self.new("take", f"{node.name}.cols", (n, c, oh, ow), [rows], OPAQUE)
            out = self.new("elementwise", f"{node.name}.requantize", (n, c, oh, ow), [cols],
                           ELEMWISE)
            return _Tensor(out, x.unsigned)
        if mode not in ("bilinear", "linear"):
            raise ConfigError(f"{node.name}: interpolate mode {mode!r} is not supported; "
                              "the compiler lowers 'nearest' and 'bilinear'")
        src = self.int_prologue(arg, node, f"{node.name}.cast", 4)
        rows = [self.new("take", f"{node.name}.rows{i}", (n, c, oh, w), [src], OPAQUE, 4)
                for i in (0, 1)]
        mid = self.new("elementwise", f"{node.name}.lerp_rows", (n, c, oh, w), rows, ELEMWISE, 4)
        cols = [self.new("take", f"{node.name}.cols{i}", (n, c, oh, ow), [mid], OPAQUE, 4)
                for i in (0, 1)]
        out = self.new("elementwise", f"{node.name}.lerp_cols", (n, c, oh, ow), cols, ELEMWISE)
        return _Tensor(out, x.unsigned)

    def concat(self, node: fx.Node, parts: list[fx.Node], dim: int) -> _Tensor:
        shapes = [self.kernels[self.kernel_of(p)].out_shape for p in parts]
        shape = list(shapes[0])
        shape[dim] = sum(s[dim] for s in shapes)
        k = self.new("concat", node.name, shape, [self.kernel_of(p) for p in parts], INJECTIVE)
        for p in dict.fromkeys(parts):
            producer = self.absorb_into(p, node, (ELEMWISE, INJECTIVE))
            if producer is not None:
                self.kernels[k].reads = [r for r in self.kernels[k].reads if r != producer]
                self.merge(producer, k)
        return _Tensor(k, False)  # Brevitas's concat quantizer is signed

    # ---- the walk ---------------------------------------------------------------------------
    def run(self) -> None:
        for node in self.gm.graph.nodes:
            if node.op == "placeholder":
                if any(isinstance(v, _Tensor) for v in self.value.values()):
                    raise ConfigError("the subnet takes more than one input; expected one "
                                      "image batch")
                self.value[node] = _Tensor(0)  # the input quantizer is signed (zero point 0)
            elif node.op == "output":
                flat = node.args[0] if isinstance(node.args[0], (tuple, list)) else [node.args[0]]
                self.outputs = [self.value[a].index for a in flat]
            else:
                self.value[node] = self.lower(node)

    def lower(self, node: fx.Node):
        value = self.value
        args = fx.node.map_arg(node.args, value.__getitem__)
        kwargs = fx.node.map_arg(node.kwargs, value.__getitem__)
        tensors = [a for a in node.all_input_nodes if isinstance(value[a], _Tensor)]
        if node.op == "call_function" and node.target in (getattr, operator.getitem):
            obj = args[0]
            if isinstance(obj, _Tensor):
                if node.target is not getattr or args[1] != "shape":
                    raise ConfigError(f"{node.name}: tensor access {node.target} {args[1:]} is "
                                      "not supported; only `.shape` is")
                return torch.Size(self.kernels[self.find(obj.index)].out_shape)
            return node.target(*args)
        first = tensors[0] if tensors else None
        if node.op == "call_module":
            mod = self.modules[node.target]
            x = value[first]
            if isinstance(mod, ALIAS_MODULES + FOLDED_MODULES):
                return x
            if isinstance(mod, nn.Conv2d):
                return self.conv(node, mod, x, first)
            if isinstance(mod, CLAMP_MODULES):
                return self.clamp(node, x, first, isinstance(mod, UNSIGNED_MODULES))
            if isinstance(mod, LUT_MODULES):
                return self.lut(node, first, isinstance(mod, UNSIGNED_MODULES))
            if isinstance(mod, nn.AdaptiveAvgPool2d) and _pair(mod.output_size) == (1, 1):
                return self.global_pool(node, x, first)
            if isinstance(mod, nn.AvgPool2d):
                return self.avg_pool(node, mod, x, first)
            if isinstance(mod, nn.MaxPool2d):
                return self.max_pool(node, mod, x, first)
            raise ConfigError(
                f"{node.name}: no lowering rule for {type(mod).__name__}; add it to "
                "qanas.search.graph (the compiler must also support it)")
        if node.op == "call_function" and node.target in BINARY_FUNCTIONS:
            if len(tensors) != 2:
                raise ConfigError(f"{node.name}: {node.target.__name__} with a scalar operand "
                                  "is not supported by the int8 flow")
            return self.binary(node, BINARY_FUNCTIONS[node.target], tensors)
        if node.op == "call_function" and node.target in CLAMP_FUNCTIONS:
            return self.clamp(node, value[first], first, CLAMP_FUNCTIONS[node.target])
        if node.op == "call_function" and node.target in LUT_FUNCTIONS:
            return self.lut(node, first, LUT_FUNCTIONS[node.target])
        if node.op == "call_function" and node.target is F.interpolate:
            return self.resize(node, value[first], first, self._resize_size(node, args, kwargs),
                               kwargs.get("mode", args[3] if len(args) > 3 else "nearest"))
        if node.op == "call_function" and node.target is torch.cat:
            dim = kwargs.get("dim", args[1] if len(args) > 1 else 0)
            return self.concat(node, list(node.args[0]), dim)
        raise ConfigError(
            f"{node.name}: no lowering rule for {node.op} {node.target}; add it to "
            "qanas.search.graph (the compiler must also support it)")

    def _resize_size(self, node, args, kwargs) -> tuple[int, int]:
        _, _, h, w = self.kernels[self.find(args[0].index)].out_shape
        size = kwargs.get("size", args[1] if len(args) > 1 else None)
        scale = kwargs.get("scale_factor", args[2] if len(args) > 2 else None)
        if size is not None:
            oh, ow = _pair(size) if isinstance(size, int) else tuple(size)
        elif scale is not None:
            sh, sw = (scale, scale) if isinstance(scale, (int, float)) else scale
            oh, ow = int(h * sh), int(w * sw)
        else:
            raise ConfigError(f"{node.name}: interpolate without size or scale_factor")
        return int(oh), int(ow)


def trace_kernels(gm: fx.GraphModule, input_shape: tuple[int, ...], act_signed: bool = False
                  ) -> tuple[list[Kernel], list[ConvInfo], list[int]]:
    """Lowers the nodes of `gm` to fused kernels (see the module docstring).

    Args:
        gm: the traced float model.
        input_shape: NCHW of its one input.
        act_signed: the `QuantSpec.act_signed` of the export (True: no unsigned
            activations, hence no pad kernels before padded convs).

    Returns:
        (kernels; index 0 is the graph input; kernels merged into others are left out),
        convs, indices of the output kernels.
    """
    low = _Lowering(gm, tuple(input_shape), act_signed)
    low.run()
    roots = [i for i in range(len(low.kernels)) if low.find(i) == i]
    index = {old: new for new, old in enumerate(roots)}
    kernels = []
    for i in roots:
        k = low.kernels[i]
        reads = [index[low.find(r)] for r in k.reads if low.find(r) != i]
        kernels.append(Kernel(k.kind, k.ops, k.out_shape, list(dict.fromkeys(reads)),
                              k.position, k.pattern, k.elem_bytes))
    return kernels, low.convs, [index[low.find(o)] for o in low.outputs]


def kernels_to_buffers(kernels: list[Kernel], outputs: list[int]
                       ) -> tuple[list[str], list[BufferLifetime]]:
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
        BufferLifetime("input" if k == 0 else f"k{step[k]}_out",
                       _numel(kernels[k].out_shape) * kernels[k].elem_bytes, step[k], last[k])
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
                 num_classes: int, act_signed: bool = False) -> SubnetGraph:
    """The fused kernels and activation buffers of subnet `cfg` at `image_size`.

    Example:
        >>> g = subnet_graph(get_space("squeezenas-small"), cfg, (64, 128), 4)  # doctest: +SKIP
        >>> get_planner("greedy").plan(g.buffers).arena_bytes  # doctest: +SKIP
    """
    return module_graph(trace_subnet(space, cfg, num_classes), (1, 3, *image_size), act_signed)


def module_graph(module: nn.Module, input_shape: tuple[int, ...],
                 act_signed: bool = False) -> SubnetGraph:
    """Fused kernels and activation buffers of any fx-traceable single-input model."""
    gm = module if isinstance(module, fx.GraphModule) else fx.symbolic_trace(module)
    kernels, convs, outputs = trace_kernels(gm, tuple(input_shape), act_signed)
    kinds, buffers = kernels_to_buffers(kernels, outputs)
    return SubnetGraph(tuple(kinds), tuple(buffers), tuple(convs))
