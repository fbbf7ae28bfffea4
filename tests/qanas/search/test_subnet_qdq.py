"""The search's in-memory QDQ graph (`qanas.cost.subnet_qdq`) equals Brevitas's export.

`SubnetExporter.qdq_model` writes the graph of a calibrated subnet directly (from the lean
quantized model of `quantize_fast`, else from the Brevitas model) instead of tracing it
through Brevitas's exporter; the compiler must see the same graph, so the tests compare
`graph_signature`s (operators, attributes, constants and scales) with Brevitas's export,
and the compiler's plans of the two.
"""

from __future__ import annotations

import onnx
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from qanas.cost.subnet_export import SubnetExporter
from qanas.cost.subnet_qdq import (
    UnsupportedGraph,
    graph_signature,
    qcdq_from_graph,
    qcdq_from_lean,
)
from qanas.quant import QuantSpec, calibrate, export_qdq, quantize_model
from qanas.quant.toy import ToySegNet, _conv_bn_act, _InvertedResidual
from qanas.supernet.blocks import ConvBNAct
from qanas.supernet.topformer_blocks import Attention, Injection, Mlp, TransformerBlock


class _EveryOp(nn.Module):
    """Hardswish, Hardsigmoid gate, global and 3x3 average pools, both Resize forms
    (a scale factor: nearest; a size: bilinear align-corners) and a concat."""

    def __init__(self):
        super().__init__()
        self.stem = _conv_bn_act(3, 8, 3, 2)
        self.block = _InvertedResidual(8, 8, 3, 1, act=nn.Hardswish)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.gate = nn.Sequential(nn.Conv2d(8, 8, 1), nn.Hardsigmoid())
        self.low_pool = nn.AvgPool2d(3, 1, 1)
        self.classifier = nn.Conv2d(16, 4, 1)

    def forward(self, x):
        y = self.block(self.stem(x))
        y = y * self.gate(self.pool(y))
        y = torch.cat([F.interpolate(y, scale_factor=2, mode="nearest"),
                       F.interpolate(self.low_pool(y), size=(32, 32), mode="bilinear",
                                     align_corners=True)], dim=1)
        return self.classifier(y)


class _TinyHybrid(nn.Module):
    """TopFormer in miniature: pooled tokens, one attention block (head split and join,
    both matmuls, softmax) with TopFormer's zero-initialised projection (all weight codes
    0, as the attention's output projection in every seeded supernet), and a slice of the
    tokens injected into the local features (its gate and embedding convs both read it)."""

    def __init__(self):
        super().__init__()
        self.stem = ConvBNAct(3, 8, 3, stride=2)
        self.expand = ConvBNAct(8, 16, 1)
        self.pool = nn.AvgPool2d(4, 4)
        self.block = TransformerBlock(Attention(16, 2, 4, 6), Mlp(16, 24))
        nn.init.zeros_(self.block.attn.proj[1].weight)
        self.inject = Injection(8, 16)
        self.classifier = nn.Conv2d(16, 4, 1)

    def forward(self, x):
        feat = self.stem(x)
        tokens = self.block(self.pool(self.expand(feat)))
        return self.classifier(self.inject(feat, torch.narrow(tokens, 1, 8, 8)))


def _calibrated(model: nn.Module, shape):
    qmodel = quantize_model(model.eval(), QuantSpec())
    gen = torch.Generator().manual_seed(0)
    calibrate(qmodel, [torch.randn(*shape, generator=gen) for _ in range(2)])
    return qmodel, torch.randn(*shape, generator=gen)


def _lean(model: nn.Module, shape):
    from qanas.quant.quant_model import quantize_fast

    lean = quantize_fast(model.eval(), QuantSpec())
    gen = torch.Generator().manual_seed(0)
    lean.calibrate([torch.randn(*shape, generator=gen) for _ in range(2)])
    return lean


@pytest.mark.parametrize(("model_class", "ops"), [
    (_EveryOp, {"HardSwish": 2, "HardSigmoid": 1, "GlobalAveragePool": 1, "AveragePool": 1,
                "Resize": 2, "Concat": 1, "Mul": 1, "Add": 1}),
    (_TinyHybrid, {"Reshape": 7, "Transpose": 3, "MatMul": 2, "Softmax": 1, "Slice": 1,
                   "HardSigmoid": 1, "Resize": 2}),
], ids=["every-op", "attention"])
def test_every_supported_op_is_written_as_brevitas_exports_it(tmp_path, model_class, ops):
    """From the Brevitas model and from the lean one: Brevitas's export, op for op."""
    shape = (1, 3, 32, 32)
    torch.manual_seed(0)
    model = model_class()
    qmodel, example = _calibrated(model, shape)
    ours = qcdq_from_graph(qmodel, shape)
    onnx.checker.check_model(ours)
    theirs = graph_signature(onnx.load(str(export_qdq(qmodel, example, tmp_path / "m.onnx"))))
    assert graph_signature(ours) == theirs
    assert graph_signature(qcdq_from_lean(_lean(model, shape), shape)) == theirs
    written = [op for op, _, _ in theirs[0]]
    assert {op: written.count(op) for op in ops} == ops


def test_a_module_called_twice_is_left_to_brevitas():
    """ToySegNet pools one tensor twice; the exporter merges the two, the writer does not try."""
    shape = (1, 3, 32, 32)
    qmodel, _ = _calibrated(ToySegNet(), shape)
    with pytest.raises(UnsupportedGraph, match="twice on the same tensor"):
        qcdq_from_graph(qmodel, shape)
    with pytest.raises(UnsupportedGraph, match="twice on the same tensor"):
        qcdq_from_lean(_lean(ToySegNet(), shape), shape)


def test_signature_tells_scales_and_scalar_shapes_apart():
    from onnx import helper, numpy_helper

    def model(scale):
        s = numpy_helper.from_array(scale, "s")
        z = numpy_helper.from_array(torch.zeros(scale.shape, dtype=torch.int8).numpy(), "z")
        graph = helper.make_graph(
            [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"])], "g",
            [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1])],
            [helper.make_tensor_value_info("q", onnx.TensorProto.INT8, [1])], [s, z])
        return helper.make_model(graph)

    import numpy as np

    scalar = graph_signature(model(np.array(0.5, np.float32)))
    assert scalar == graph_signature(model(np.array(0.5, np.float32)))
    assert scalar != graph_signature(model(np.array(0.25, np.float32)))
    assert scalar != graph_signature(model(np.array([0.5], np.float32)))


@pytest.mark.slow
def test_topformer_subnet_is_written_as_brevitas_exports_it(tmp_path):
    """The min efficient-topformer subnet from the search's exporter (lean model, no
    fallback): Brevitas's export, op for op."""
    from qanas.space import get_space

    space = get_space("efficient-topformer")
    exporter = SubnetExporter(space, (64, 64), 4)
    cfg = space.resolve("min")
    ours = exporter.qdq_model(cfg)
    assert exporter.fallbacks == {}
    onnx.checker.check_model(ours)
    theirs = graph_signature(onnx.load(str(exporter.export_onnx(cfg, tmp_path))))
    assert graph_signature(ours) == theirs
    ops = [op for op, _, _ in theirs[0]]
    blocks = len(space.plan(cfg).vit)
    assert ops.count("MatMul") == 2 * blocks and ops.count("Softmax") == blocks
    assert {"Reshape", "Transpose", "Slice", "HardSigmoid"} <= set(ops)


@pytest.mark.slow
@pytest.mark.parametrize("space_name, which", [("squeezenas-small", "min"),
                                               ("mbv2-deeplab", "min")])
def test_subnet_graph_and_plan_equal_brevitas_export(space_name, which, tmp_path):
    """A subnet at 64x128: the search's graph (from the lean model) is Brevitas's export,
    and its plan-only report is the compiled one's."""
    from compiler.driver import compile_model
    from compiler.pipeline import CompileOptions
    from compiler.plan_only import plan_model_memory
    from qanas.space import get_space

    space = get_space(space_name)
    exporter = SubnetExporter(space, (64, 128), 4)
    cfg = space.resolve(which)
    ours = exporter.qdq_model(cfg)
    assert cfg.to_str() not in exporter.fallbacks
    path = exporter.export_onnx(cfg, tmp_path)
    assert graph_signature(ours) == graph_signature(onnx.load(str(path)))
    report = plan_model_memory(ours, "host", CompileOptions())
    compiled = compile_model(path, "host", tmp_path / "project")
    assert report == compiled.report
