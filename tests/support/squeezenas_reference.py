"""An independent model of the released SqueezeNAS Cityscapes networks, for tests.

Written from the published description of the authors' code (github.com/ashaw596/squeezenas):
the module tree, and so the state-dict keys, of their ``SqueezeNASNetCityscapes``, and
its forward pass. It shares nothing with `qanas.supernet` beyond torch, so the tests of
`qanas import-weights squeezenas` compare the converted model with a second model of
the same weights:

* stem: ``encoder.conv1`` = 3x3 stride-2 conv (no bias) → BN → ReLU;
* blocks ``encoder.residuals.<i>``, each wrapping an ``op``: the inverted residual is a
  sequence 1x1 conv (groups g) → BN → ReLU → kxk depthwise (stride, dilation, padding
  ``dilation*(k-1)/2``) → BN → ReLU → 1x1 conv (groups g) → BN; the skip is a zero
  op (the wrapper's residual add makes it the identity) when the shape is kept, else
  ReLU → 1x1 conv → BN; the wrapper adds the input when stride is 1 and the channels
  are kept;
* Small: ``encoder.last_conv`` = 1x1 conv → BN → ReLU to 256;
* LR-ASPP (Small, Large) on the last output and block 7/8's output: ``_1x1_TL``
  (conv-BN-ReLU), gate = 49×49 average pool at stride (16, 20) → ``_1x1_BL`` (biased
  1x1) → sigmoid → bilinear resize back; product; ×2 bilinear; ``_1x1_TR`` plus
  ``_1x1_BR`` of the low-level features; ×8 bilinear with align_corners=True;
* XLarge: ASPP (1x1, three 3x3 with groups = 160 at rates 6/12/18, global average
  pool broadcast back, concatenated, 1x1), ×4 bilinear align_corners=True, concat with
  ``lowlevel1x1`` of block 4's output, ``logits2`` (depthwise 3x3 conv-BN-ReLU),
  ``logits3`` (1x1), ×4 bilinear align_corners=True.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn

# (stem channels, [(channels, blocks, first stride)], last conv, low-level block, decoder width)
MACRO = {
    "small": (16, [(16, 4, 2), (24, 4, 2), (40, 4, 2), (48, 4, 1), (96, 4, 1)], 256, 7, 128),
    "large": (16, [(16, 1, 1), (24, 4, 2), (32, 4, 2), (64, 4, 2), (96, 4, 1), (160, 4, 1),
                   (160, 1, 1)], None, 8, 128),
    "xlarge": (48, [(24, 1, 1), (32, 4, 2), (48, 4, 2), (96, 4, 2), (144, 4, 1), (240, 4, 1),
                    (320, 1, 1)], None, 4, 160),
}


class ConvBNReLU(nn.Module):
    """Decoder layer with named children ``conv``, ``bn``."""

    def __init__(self, cin, cout, k, dilation=1, groups=1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, padding=dilation * (k - 1) // 2, dilation=dilation,
                              groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.relu(self.bn(self.conv(x)))


def _inverted_residual(cin, cout, stride, k, e, g, d):
    hidden = cin * e
    return nn.Sequential(
        nn.Conv2d(cin, hidden, 1, groups=g, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(),
        nn.Conv2d(hidden, hidden, k, stride, d * (k - 1) // 2, d, groups=hidden, bias=False),
        nn.BatchNorm2d(hidden), nn.ReLU(),
        nn.Conv2d(hidden, cout, 1, groups=g, bias=False), nn.BatchNorm2d(cout))


class Zero(nn.Module):
    def forward(self, x):
        return torch.zeros_like(x)


class ReLUConvBN(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.op = nn.Sequential(nn.ReLU(), nn.Conv2d(cin, cout, 1, bias=False),
                                nn.BatchNorm2d(cout))

    def forward(self, x):
        return self.op(x)


class Block(nn.Module):
    def __init__(self, label, cin, cout, stride):
        super().__init__()
        self.residual = stride == 1 and cin == cout
        if label == "skip":
            assert stride == 1, "the published networks have no stride-2 skip"
            self.op = Zero() if self.residual else ReLUConvBN(cin, cout)
        else:
            k, e, g, d = re.fullmatch(r"k(\d)e(\d)g(\d)(?:d(\d))?", label).groups()
            self.op = _inverted_residual(cin, cout, stride, int(k), int(e), int(g), int(d or 1))

    def forward(self, x):
        return x + self.op(x) if self.residual else self.op(x)


class Encoder(nn.Module):
    def __init__(self, size, genotype):
        super().__init__()
        stem, stages, last, _, _ = MACRO[size]
        self.conv1 = nn.Sequential(nn.Conv2d(3, stem, 3, 2, 1, bias=False), nn.BatchNorm2d(stem),
                                   nn.ReLU())
        self.residuals = nn.ModuleList()
        cin = stem
        for channels, count, first in stages:
            for b in range(count):
                self.residuals.append(Block(genotype[len(self.residuals)], cin, channels,
                                            first if b == 0 else 1))
                cin = channels
        if last is not None:
            self.last_conv = nn.Sequential(nn.Conv2d(cin, last, 1, bias=False),
                                           nn.BatchNorm2d(last), nn.ReLU())

    def forward(self, x):
        x = self.conv1(x)
        outs = []
        for block in self.residuals:
            x = block(x)
            outs.append(x)
        if hasattr(self, "last_conv"):
            x = self.last_conv(x)
        return x, outs


class LiteASPP(nn.Module):
    def __init__(self, high, low, mid, classes):
        super().__init__()
        self._1x1_TL = ConvBNReLU(high, mid, 1)
        self._1x1_BL = nn.Conv2d(high, mid, 1)
        self._1x1_TR = nn.Conv2d(mid, classes, 1)
        self._1x1_BR = nn.Conv2d(low, classes, 1)

    def forward(self, high, low):
        top = self._1x1_TL(high)
        gate = F.avg_pool2d(high, 49, stride=(16, 20), count_include_pad=False)
        gate = torch.sigmoid(self._1x1_BL(gate))
        gate = F.interpolate(gate, size=top.shape[-2:], mode="bilinear", align_corners=False)
        top = F.interpolate(top * gate, scale_factor=2, mode="bilinear", align_corners=False)
        return self._1x1_TR(top) + self._1x1_BR(low)


class ASPP(nn.Module):
    def __init__(self, cin, mid):
        super().__init__()
        self._1x1_1_conv = ConvBNReLU(cin, mid, 1)
        self._3x3_1_conv = ConvBNReLU(cin, mid, 3, 6, mid)
        self._3x3_2_conv = ConvBNReLU(cin, mid, 3, 12, mid)
        self._3x3_3_conv = ConvBNReLU(cin, mid, 3, 18, mid)
        self._1x1_2_conv = ConvBNReLU(mid * 4 + cin, mid, 1)

    def forward(self, x):
        pooled = x.mean(dim=(2, 3), keepdim=True).expand_as(x)
        parts = [self._1x1_1_conv(x), self._3x3_1_conv(x), self._3x3_2_conv(x),
                 self._3x3_3_conv(x), pooled]
        return self._1x1_2_conv(torch.cat(parts, dim=1))


class ReleasedSqueezeNAS(nn.Module):
    """The released network `size` ("small", "large", "xlarge") with `genotype` (labels)."""

    def __init__(self, size, genotype, classes=19):
        super().__init__()
        _, stages, last, self.low_index, mid = MACRO[size]
        self.encoder = Encoder(size, genotype)
        high = last or stages[-1][0]
        count, low = 0, None
        for channels, blocks, _ in stages:
            count += blocks
            if count > self.low_index:
                low = channels
                break
        self.lite = size != "xlarge"
        if self.lite:
            self.decoder = LiteASPP(high, low, mid, classes)
        else:
            self.decoder = ASPP(high, mid)
            self.lowlevel1x1 = nn.Conv2d(low, low, 1)
            self.logits2 = ConvBNReLU(mid + low, mid + low, 3, groups=mid + low)
            self.logits3 = nn.Conv2d(mid + low, classes, 1)

    def forward(self, x):
        high, outs = self.encoder(x)
        low = outs[self.low_index]
        if self.lite:
            logits = self.decoder(high, low)
            return F.interpolate(logits, scale_factor=8, mode="bilinear", align_corners=True)
        y = F.interpolate(self.decoder(high), scale_factor=4, mode="bilinear", align_corners=True)
        y = self.logits3(self.logits2(torch.cat([y, self.lowlevel1x1(low)], dim=1)))
        return F.interpolate(y, scale_factor=4, mode="bilinear", align_corners=True)


def randomize(model: nn.Module, seed: int) -> nn.Module:
    """Random weights and BN statistics (so that no BN is the identity); eval mode."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.state_dict().items():
            leaf = name.rsplit(".", 1)[-1]
            if leaf == "num_batches_tracked":
                continue
            if leaf == "running_var" or (leaf == "weight" and tensor.dim() == 1):
                tensor.copy_(0.5 + torch.rand(tensor.shape, generator=gen))  # variances, BN scales
            elif tensor.dim() == 4:  # conv kernels, He-scaled so activations stay O(1)
                fan_in = tensor[0].numel()
                tensor.copy_(torch.randn(tensor.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
            else:  # biases, BN shifts and means
                tensor.copy_(0.1 * torch.randn(tensor.shape, generator=gen))
    return model.eval()
