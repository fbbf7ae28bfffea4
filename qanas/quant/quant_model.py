"""`QuantGraphModel`: a `QuantGraph` run as a module, calibrated and fake-quantized without Brevitas.

`quantize_fast(model, spec)` is the lean counterpart of `quantize_model`: the same
quantization points and shared scales (`qanas.quant.quant_graph`), the same rounding
and statistics (`qanas.quant.fake_quant`), but plain torch ops and no Brevitas
module, so building and calibrating it costs milliseconds instead of seconds. It is
what subnet scoring uses; `quantize_model` stays the path to the QDQ ONNX export.

Example:
    >>> qmodel = quantize_fast(subnet, QuantSpec())  # doctest: +SKIP
    >>> qmodel.calibrate(calibration_batches)  # doctest: +SKIP
    >>> logits = qmodel(images)  # doctest: +SKIP
"""

from __future__ import annotations

import operator
from collections.abc import Iterable

import torch
import torch.nn.functional as F
from torch import nn
from torch.fx.node import map_aggregate

from qanas.quant.errors import QuantizationError
from qanas.quant.fake_quant import quantize_bias, quantize_weight, weight_scale
from qanas.quant.quant_graph import QNode, QuantGraph, input_quantizer, plan_quant_graph
from qanas.quant.spec import QuantSpec


class QuantGraphModel(nn.Module):
    """Runs a `QuantGraph`: float with observation while calibrating, fake-quant after.

    Args:
        graph: the planned graph (see `plan_quant_graph`).

    Raises:
        QuantizationError: `spec.layer_weight_bits` names a layer that is not a conv of it.
    """

    def __init__(self, graph: QuantGraph):
        super().__init__()
        self.graph = graph
        self.spec = graph.spec
        convs = [n.meta["module"] for n in graph.nodes if n.kind == "conv"]
        unknown = sorted({name for name, _ in self.spec.layer_weight_bits} - set(convs))
        if unknown:
            raise QuantizationError(f"QuantSpec.layer_weight_bits names {unknown}, not convs of "
                                    f"this model; its convs are: {convs[:8]}...")
        self._observing = False
        self._weights: dict[int, tuple[torch.Tensor, torch.Tensor | None]] = {}
        self._groups = {id(n.quant.quantizer.group): n.quant.quantizer.group
                        for n in graph.nodes if n.quant is not None}
        self._memory = _MemoryPlan(graph)
        self.calibrated = False

    @property
    def num_scales(self) -> int:
        """Distinct calibrated activation scales (Brevitas `scaling_impl`s)."""
        return len(self._groups)

    @torch.no_grad()
    def calibrate(self, batches: Iterable, max_batches: int | None = None) -> int:
        """Collects activation statistics on float forward passes and fixes the scales.

        Mirrors `qanas.quant.calibrate` (Brevitas `calibration_mode`): weights, biases and
        activations stay float while every quantizer observes its input.

        Returns:
            The number of batches used.

        Raises:
            QuantizationError: if `batches` is empty.
        """
        for group in self._groups.values():
            group.reset()
        self._weights.clear()
        self._observing = True
        used = 0
        try:
            for batch in batches:
                if max_batches is not None and used >= max_batches:
                    break
                self._run(batch[0] if isinstance(batch, (tuple, list)) else batch)
                used += 1
        finally:
            self._observing = False
        if used == 0:
            raise QuantizationError("calibration needs at least one batch of images; got none")
        self._quantize_parameters()
        self.calibrated = True
        return used

    def _quantize_parameters(self) -> None:
        spec = self.spec
        for node in self.graph.nodes:
            if node.kind != "conv":
                continue
            conv = node.conv
            bits = spec.weight_bits_of(node.meta["module"])
            w_scale = weight_scale(conv.weight, bits, spec.weight_per_channel,
                                   spec.narrow_range_weights)
            weight = quantize_weight(conv.weight, w_scale, bits, spec.narrow_range_weights)
            bias = None
            if conv.bias is not None:
                in_scale = input_quantizer(node).group.scale
                bias = quantize_bias(conv.bias, in_scale, w_scale, spec.bias_bits)
            self._weights[id(node)] = (weight, bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Fake-quantized logits (call `calibrate` first)."""
        if not self.calibrated:
            raise QuantizationError("QuantGraphModel used before calibrate()")
        return self._run(x)

    def _run(self, x: torch.Tensor) -> torch.Tensor:
        values: dict[int, object] = {}
        observing = self._observing
        memory = self._memory
        owns_input = memory.owns_input_observing if observing else memory.owns_input

        def value(a):
            return values[id(a)] if isinstance(a, QNode) else a

        for node in self.graph.nodes:
            kind = node.kind
            if kind == "input":
                out = x
            elif kind == "conv":
                conv = node.conv
                if observing:
                    weight, bias = conv.weight, conv.bias
                else:
                    weight, bias = self._weights[id(node)]
                out = F.conv2d(values[id(node.args[0])], weight, bias, conv.stride,
                               conv.padding, conv.dilation, conv.groups)
            elif kind in ("q", "act"):
                out = values[id(node.args[0])]
                quant = node.quant
                act = quant.act
                if observing:
                    if act is not None:
                        out = (_INPLACE_ACTS[act](out) if id(node) in owns_input
                               else act(out))
                    quant.quantizer.group.observe(out, nonnegative=act in _NONNEGATIVE_ACTS)
                elif act is None and id(node) not in owns_input:
                    out = quant.quantizer(out)
                else:
                    if id(node) not in owns_input:
                        out, act = act(out), None  # a fresh tensor this node owns
                    out = quant.quantizer.quantize_(
                        out, None if act is None else _INPLACE_ACTS[act])
            elif kind == "output":
                return value(node.args[0])
            else:
                args = map_aggregate(node.args, value)
                kwargs = map_aggregate(node.kwargs, value)
                out = node.target(*args, **kwargs)
            values[id(node)] = out
            for dead in memory.release.get(id(node), ()):
                del values[dead]
        raise QuantizationError("the quantized graph has no output")


_INPLACE_ACTS = {torch.relu: torch.relu_, torch.sigmoid: torch.sigmoid_,
                 F.hardsigmoid: lambda x: F.hardsigmoid(x, inplace=True),
                 F.hardswish: lambda x: F.hardswish(x, inplace=True)}
"""The in-place twin of each activation `quant_graph` gives an act node (same values)."""
_NONNEGATIVE_ACTS = (torch.relu, torch.sigmoid, F.hardsigmoid)
"""Activations whose output is never negative (a hint for the percentile statistic)."""


class _MemoryPlan:
    """Which nodes may overwrite their input, and which values die after each node.

    A q or act node may compute in its input's storage when no other node reads that
    input and the input node returned storage of its own: a conv, pool, resize,
    concatenation, product (elementwise or matrix), softmax or (not in-place) sum makes
    a fresh tensor; an act or q node's value is fresh or, by induction, storage that
    only it can reach. While calibrating, a q node passes its input through unchanged
    (the same tensor), so there a q input does not count. The graph input, views
    (reshape, transpose, narrow, identity) and in-place adds are never overwritten. The plan depends on the graph alone, so it
    is made once per model.

    Attributes:
        owns_input: ids of the nodes that may overwrite their input (quantizing).
        owns_input_observing: the same while calibrating.
        release: for each node id, the ids of values whose last reader it is (freed
            after it runs, so later tensors reuse warm memory).
    """

    _FRESH = ("conv", "act", "q", "pool", "interp", "cat", "mul", "matmul", "softmax")

    def __init__(self, graph: QuantGraph):
        self.owns_input: set[int] = set()
        self.owns_input_observing: set[int] = set()
        last_reader: dict[int, int] = {}
        for node in graph.nodes:
            inputs = node.inputs()
            for source in inputs:
                last_reader[id(source)] = id(node)
            if node.kind not in ("q", "act") or len(inputs) != 1:
                continue
            source = inputs[0]
            fresh = source.kind in self._FRESH or (source.kind == "add"
                                                   and source.target is not operator.iadd)
            if fresh and len(graph.users(source)) == 1:
                self.owns_input.add(id(node))
                if source.kind != "q":
                    self.owns_input_observing.add(id(node))
        self.release: dict[int, list[int]] = {}
        for value_id, reader in last_reader.items():
            self.release.setdefault(reader, []).append(value_id)


def quantize_fast(model: nn.Module, spec: QuantSpec | None = None) -> QuantGraphModel:
    """The lean fake-quant model of a static float subnet (call `calibrate` before use).

    Raises:
        qanas.quant.quant_graph.UnsupportedGraph: if the subnet has an op the lean
            graph does not model (use `quantize_model` then).
    """
    return QuantGraphModel(plan_quant_graph(model, spec or QuantSpec()))


__all__ = ["QuantGraphModel", "quantize_fast"]
