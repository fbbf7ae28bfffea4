"""Brevitas int8 flow on the toy net: BN folding, quantization, QDQ export vs onnxruntime."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import numpy_helper

from qanas.quant import (
    QuantizationError,
    QuantSpec,
    calibrate,
    compare_with_onnx,
    export_qdq,
    fold_batchnorm,
    quantize_model,
)
from qanas.quant.toy import ToySegNet

SIZE = (32, 32)


def _toy(seed: int = 0) -> ToySegNet:
    torch.manual_seed(seed)
    net = ToySegNet(num_classes=5, image_size=SIZE)
    gen = torch.Generator().manual_seed(seed)
    for module in net.modules():  # non-trivial BN statistics and affine parameters
        if isinstance(module, torch.nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=gen) * 0.3)
            module.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=gen) * 0.2)
    return net.eval()


def _images(n: int, seed: int) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 3, *SIZE, generator=gen) for _ in range(n)]


def test_fold_batchnorm_preserves_outputs_and_removes_bn():
    net = _toy()
    x = _images(1, 1)[0]
    folded = fold_batchnorm(net)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules()), "input was modified"
    torch.testing.assert_close(folded(x), net(x), atol=1e-5, rtol=1e-4)


def _quantized(spec: QuantSpec, seed: int = 0):
    qmodel = quantize_model(_toy(seed), spec)
    calibrate(qmodel, _images(spec.calibration_batches, 2))
    return qmodel


@pytest.mark.parametrize("spec", [QuantSpec(), QuantSpec(act_signed=True, weight_per_channel=False)],
                         ids=str)
def test_onnx_qdq_matches_fake_quant(tmp_path, spec):
    qmodel = _quantized(spec)
    x = _images(1, 3)[0]
    path = export_qdq(qmodel, x[:1], tmp_path / "toy.onnx")
    report = compare_with_onnx(qmodel, path, x)
    print(f"{spec}: fake-quant vs ORT {report}")
    assert report["max_int_diff"] <= 1
    assert report["equal_share"] >= 0.999
    assert report["max_abs_diff"] <= report["scale"] * 1.001


def test_fake_quant_stays_close_to_float():
    net = _toy()
    qmodel = _quantized(QuantSpec(calibration_batches=4))
    x = _images(1, 4)[0]
    with torch.no_grad():
        ref, out = net(x), qmodel(x)
    rel = (out - ref).norm() / ref.norm()
    assert rel < 0.2, f"int8 relative error {rel:.3f}"


def _consts(model) -> dict[str, np.ndarray]:
    out = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type == "Constant":
            out[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
    return out


def test_exported_graph_is_integer_lowerable(tmp_path):
    qmodel = _quantized(QuantSpec())
    path = export_qdq(qmodel, _images(1, 5)[0][:1], tmp_path / "toy.onnx")
    model = onnx.load(str(path))
    producers = {o: n for n in model.graph.node for o in n.output}
    consts = _consts(model)
    ops = {n.op_type for n in model.graph.node}
    assert {"Conv", "Add", "Mul", "Concat", "Resize", "GlobalAveragePool", "AveragePool",
            "Sigmoid", "HardSigmoid", "HardSwish", "Relu"} <= ops
    assert "Shape" not in ops, "Resize sizes were not folded to constants"
    # The input is quantized first, the output is dequantized last.
    first = next(n for n in model.graph.node if model.graph.input[0].name in n.input)
    assert first.op_type == "QuantizeLinear"
    assert producers[model.graph.output[0].name].op_type == "DequantizeLinear"
    # Adds and Concats take dequantized inputs with one shared scale (integer Add/Concat).
    for node in model.graph.node:
        if node.op_type in ("Add", "Concat", "Mul"):
            srcs = [producers[i] for i in node.input]
            assert all(s.op_type == "DequantizeLinear" for s in srcs), node.name
            if node.op_type != "Mul":
                scales = [float(consts[s.input[1]]) for s in srcs]
                assert np.allclose(scales, scales[0], rtol=0, atol=0), (node.name, scales)
    # Conv weights are int8 with one scale per output channel, biases int32.
    for node in model.graph.node:
        if node.op_type == "Conv":
            w_dq = producers[node.input[1]]
            w_int = consts.get(w_dq.input[0])
            if w_int is None:  # QuantizeLinear -> Clip -> DequantizeLinear on a float weight
                continue
            assert w_int.dtype == np.int8
            assert consts[w_dq.input[1]].size == w_int.shape[0]
            if len(node.input) > 2:
                b_dq = producers[node.input[2]]
                assert consts[b_dq.input[0]].dtype == np.int32


def test_quantized_convs_use_spec_bit_width():
    import brevitas.nn as qnn

    qmodel = _quantized(QuantSpec(weight_bits=4))
    convs = [m for m in qmodel.modules() if isinstance(m, qnn.QuantConv2d)]
    assert convs and all(int(c.quant_weight().bit_width) == 4 for c in convs)
    ints = convs[0].quant_weight().int()
    assert int(ints.abs().max()) <= 7


def test_untraceable_model_raises_clear_error():
    class Branchy(torch.nn.Module):
        def forward(self, x):
            return x if x.sum() > 0 else -x

    with pytest.raises(QuantizationError, match="extract"):
        quantize_model(Branchy())


def test_calibrate_requires_batches():
    qmodel = quantize_model(_toy())
    with pytest.raises(QuantizationError, match="at least one batch"):
        calibrate(qmodel, [])


def _space_names():
    from qanas.space import list_spaces

    return list_spaces()


@pytest.mark.slow
@pytest.mark.parametrize("which", ["seed", "min"])
@pytest.mark.parametrize("space_name", _space_names())
def test_real_space_subnet_exports_and_matches_onnxruntime(tmp_path, space_name, which):
    from qanas.space import get_space

    space = get_space(space_name)
    torch.manual_seed(0)
    subnet = space.build_supernet(4).extract(space.resolve(which)).eval()
    gen = torch.Generator().manual_seed(0)
    batches = [torch.randn(2, 3, 64, 64, generator=gen) for _ in range(2)]
    qmodel = quantize_model(subnet, QuantSpec(calibration_batches=2))
    calibrate(qmodel, batches)
    path = export_qdq(qmodel, batches[0][:1], tmp_path / f"{space_name}.onnx")
    report = compare_with_onnx(qmodel, path, batches[1])
    print(f"{space_name}:{which} fake-quant vs ORT {report}")
    assert report["max_int_diff"] <= 1
    assert report["equal_share"] >= 0.999
