"""QAT: fake-quant supernet stays trainable, follows set_active, strips cleanly."""

from __future__ import annotations

import torch
from torch import nn

from qanas.quant import QuantSpec, compare_with_onnx, export_qdq
from qanas.quant.qat import WeightFakeQuant, prepare_supernet_qat, strip_qat
from qanas.quant.subnet_qat import prepare_qat
from qanas.quant.toy import ToySegNet
from qanas.supernet import build_supernet


def test_weight_fake_quant_is_on_the_int8_grid_with_ste_gradient():
    w = torch.randn(4, 3, 3, 3, requires_grad=True)
    q = WeightFakeQuant(QuantSpec())(w)
    scale = w.detach().abs().amax(dim=(1, 2, 3), keepdim=True) / 127
    ints = q.detach() / scale
    torch.testing.assert_close(ints, ints.round(), atol=1e-4, rtol=0)
    assert ints.round().abs().max() <= 127
    q.sum().backward()
    assert w.grad is not None and w.grad.abs().sum() > 0


def _supernet():
    from qanas.space import get_space

    space = get_space("mbv2-deeplab")
    torch.manual_seed(0)
    return space, build_supernet(space, 3)


def test_qat_supernet_trains_and_follows_active_subnet():
    space, supernet = _supernet()
    names_before = {n for n, _ in supernet.named_parameters()}
    prepare_supernet_qat(supernet, QuantSpec())
    assert names_before <= {n for n, _ in supernet.named_parameters()}
    cfg = space.min_config()
    supernet.set_active(cfg)
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 32, 32, generator=gen)
    y = torch.randint(0, 3, (2, 32, 32), generator=gen)
    opt = torch.optim.SGD(supernet.parameters(), lr=0.05, momentum=0.9)
    supernet.train()
    losses = []
    for _ in range(6):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(supernet(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses
    # The fake-quant path differs from the float path of the same weights.
    supernet.eval()
    with torch.no_grad():
        fq = supernet(x)
        subnet = strip_qat(supernet.extract(cfg)).eval()
        assert fq.shape == subnet(x).shape
    supernet.set_active(space.max_config())
    with torch.no_grad():
        assert supernet(x).shape == (2, 3, 32, 32)


def test_strip_qat_restores_float_behaviour():
    net = ToySegNet(num_classes=3, image_size=(16, 16)).eval()
    x = torch.randn(1, 3, 16, 16)
    with torch.no_grad():
        ref = net(x)
        prepare_supernet_qat(net, QuantSpec())
        net(x)
        strip_qat(net)
        out = net(x)
    torch.testing.assert_close(out, ref)
    assert all(type(m) is not WeightFakeQuant for m in net.modules())


def test_prepare_qat_static_subnet_trains_and_exports(tmp_path):
    torch.manual_seed(0)
    net = ToySegNet(num_classes=3, image_size=(16, 16)).eval()
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 16, 16, generator=gen)
    y = torch.randint(0, 3, (2, 16, 16), generator=gen)
    qmodel = prepare_qat(net, QuantSpec(calibration_batches=1), calib_batches=[x])
    opt = torch.optim.SGD(qmodel.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for _ in range(6):
        opt.zero_grad()
        loss = nn.functional.cross_entropy(qmodel(x), y)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < losses[0], losses
    path = export_qdq(qmodel.eval(), x[:1], tmp_path / "qat.onnx")
    assert compare_with_onnx(qmodel, path, x)["max_int_diff"] <= 1
