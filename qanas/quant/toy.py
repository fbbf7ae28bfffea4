"""A tiny static segmentation net that uses every op extracted subnets may contain.

It is the reference model of the quantization and scoring tests (and a stand-in
for a subnet when no supernet is at hand): a MobileNetV2-like stem and inverted
residuals with a residual add, depthwise and dilated convolutions, ReLU6 and
Hardswish, an LR-ASPP-like head with a global-pool Sigmoid/Hardsigmoid gate and
`*`, an average pool, a concat of two branches, and bilinear/nearest upsampling
back to the input size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["ToySegNet"]


def _conv_bn_act(cin: int, cout: int, kernel: int = 3, stride: int = 1, dilation: int = 1,
                 groups: int = 1, act: type[nn.Module] | None = nn.ReLU6) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.Conv2d(cin, cout, kernel, stride, padding=dilation * (kernel // 2), dilation=dilation,
                  groups=groups, bias=False),
        nn.BatchNorm2d(cout),
    ]
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


class _InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, expand: int, stride: int, dilation: int = 1,
                 act: type[nn.Module] = nn.ReLU6):
        super().__init__()
        hidden = cin * expand
        self.expand = _conv_bn_act(cin, hidden, 1, act=act)
        self.depthwise = _conv_bn_act(hidden, hidden, 3, stride, dilation, groups=hidden, act=act)
        self.project = _conv_bn_act(hidden, cout, 1, act=None)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.residual else y


class ToySegNet(nn.Module):
    """Static toy segmentation net; output `[N, num_classes, H, W]` at `image_size`.

    Args:
        num_classes: output channels.
        image_size: `(H, W)` of the input, divisible by 4 (sizes are static, as in
            extracted subnets).
        width: channels of the first stage.

    Example:
        >>> net = ToySegNet(num_classes=3, image_size=(16, 16)).eval()
        >>> tuple(net(torch.zeros(1, 3, 16, 16)).shape)
        (1, 3, 16, 16)
    """

    def __init__(self, num_classes: int = 4, image_size: tuple[int, int] = (32, 32),
                 width: int = 8):
        super().__init__()
        h, w = image_size
        if h % 4 or w % 4:
            raise ValueError(f"image_size must be divisible by 4; got {image_size}")
        self.image_size = (h, w)
        c1, c2 = width, 2 * width
        self.stem = _conv_bn_act(3, c1, 3, 2)
        self.block1 = _InvertedResidual(c1, c1, 3, 1)
        self.block2 = _InvertedResidual(c1, c2, 3, 2, act=nn.Hardswish)
        self.block3 = _InvertedResidual(c2, c2, 3, 1, dilation=2)
        self.head = _conv_bn_act(c2, c2, 1, act=nn.ReLU)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.gate = nn.Sequential(nn.Conv2d(c2, c2, 1), nn.Sigmoid())
        self.hgate = nn.Sequential(nn.Conv2d(c2, c2, 1), nn.Hardsigmoid())
        self.low = nn.Conv2d(c1, c1, 1)
        self.low_pool = nn.AvgPool2d(3, 1, 1)
        self.classifier = nn.Conv2d(c2 + c1, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits at the input resolution."""
        h, w = self.image_size
        stem = self.stem(x)
        low = self.block1(stem)
        y = self.head(self.block3(self.block2(low)))
        y = y * self.gate(self.pool(y)) * self.hgate(self.pool(y))
        y = F.interpolate(y, size=(h // 2, w // 2), mode="nearest")
        y = torch.cat([y, self.low_pool(self.low(low))], dim=1)
        y = self.classifier(y)
        return F.interpolate(y, size=(h, w), mode="bilinear", align_corners=False)
