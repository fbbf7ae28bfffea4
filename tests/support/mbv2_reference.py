"""An independent MobileNetV2 encoder in torchvision's key layout, its seeded state dict,
and BatchNorm statistics randomized so that slicing errors show."""

from __future__ import annotations

import torch
from torch import nn

# MobileNetV2's inverted residual settings (t, c, n, s) from the paper, features.1 onwards.
MBV2_SETTINGS = ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                 (6, 320, 1, 1))


def randomize_bn(model: nn.Module, seed: int = 0) -> None:
    """Non-trivial BN statistics and affine parameters, so BN slicing errors show up."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(n, generator=gen) * 0.1)


# -- torchvision-layout initialisation --------------------------------------------------------
class RefConvBNReLU(nn.Sequential):
    def __init__(self, i, o, k=3, stride=1, groups=1, dilation=1):
        super().__init__(nn.Conv2d(i, o, k, stride, dilation * (k - 1) // 2, dilation, groups, bias=False),
                         nn.BatchNorm2d(o), nn.ReLU6())


class RefInvertedResidual(nn.Module):
    def __init__(self, i, o, stride, t, dilation):
        super().__init__()
        hidden = i * t
        layers = [RefConvBNReLU(i, hidden, 1)] if t != 1 else []
        layers += [RefConvBNReLU(hidden, hidden, 3, stride, hidden, dilation),
                   nn.Conv2d(hidden, o, 1, bias=False), nn.BatchNorm2d(o)]
        self.conv = nn.Sequential(*layers)
        self.res = stride == 1 and i == o

    def forward(self, x):
        return x + self.conv(x) if self.res else self.conv(x)


class RefMobileNetV2(nn.Module):
    """MobileNetV2 with torchvision's module names; `overrides` maps features index → (stride, dilation)."""

    def __init__(self, overrides: dict[int, tuple[int, int]] | None = None):
        super().__init__()
        overrides = overrides or {}
        features, in_ch = [RefConvBNReLU(3, 32, stride=2)], 32
        for t, c, n, s in MBV2_SETTINGS:
            for j in range(n):
                stride, dilation = overrides.get(len(features), (s if j == 0 else 1, 1))
                features.append(RefInvertedResidual(in_ch, c, stride, t, dilation))
                in_ch = c
        features.append(RefConvBNReLU(in_ch, 1280, 1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, 1000))

    def encoder(self, x):
        return self.features[:18](x)


def reference_state_dict(overrides=None) -> tuple[RefMobileNetV2, dict]:
    torch.manual_seed(3)
    ref = RefMobileNetV2(overrides).eval()
    randomize_bn(ref, seed=4)
    return ref, ref.state_dict()
