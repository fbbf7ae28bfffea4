"""Once-for-All style dynamic ops: max-size weights sliced to the active kernel and channels.

* `DynamicConv2d` keeps one max-size weight; a smaller kernel is the centre of
  the max kernel, fewer channels are the first channels (OFA's "preserve
  weight" convention). Input channels follow the input tensor.
* `DynamicBatchNorm2d` is an `nn.BatchNorm2d` of the max width whose affine
  parameters and running statistics are sliced to the input's channels; in
  training mode the sliced running statistics are updated in place, so every
  width keeps usable statistics (scoring recalibrates BN anyway).
* `DynamicInvertedResidual` composes them into a MobileNetV2 block with a
  searchable kernel, expansion ratio, input width, stride and dilation, and
  `to_static()` returns the equivalent `blocks.InvertedResidual`.

Module and parameter names mirror torchvision's MobileNetV2 (`conv.0.0.weight`,
`conv.1.1.running_mean`, ...) so pretrained weights map by name.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from qanas.space.layer_specs import expanded_channels
from qanas.supernet.blocks import InvertedResidual, make_activation


def _centre(weight: torch.Tensor, kernel: int) -> torch.Tensor:
    """The central `kernel`×`kernel` window of a (out, in, K, K) weight."""
    full = weight.shape[-1]
    start = (full - kernel) // 2
    return weight[:, :, start:start + kernel, start:start + kernel]


class DynamicConv2d(nn.Module):
    """Bias-free conv whose active kernel, output width, stride and dilation can change.

    Args:
        max_in: largest input width (ignored for depthwise convs).
        max_out: largest output width.
        max_kernel: largest (odd) kernel size.
        depthwise: one filter per channel (groups = active width).
    """

    def __init__(self, max_in: int, max_out: int, max_kernel: int, depthwise: bool = False):
        super().__init__()
        if max_kernel % 2 != 1:
            raise ValueError(f"max_kernel must be odd, got {max_kernel}")
        self.max_in, self.max_out, self.max_kernel, self.depthwise = max_in, max_out, max_kernel, depthwise
        self.weight = nn.Parameter(torch.empty(max_out, 1 if depthwise else max_in, max_kernel, max_kernel))
        nn.init.kaiming_normal_(self.weight, mode="fan_out")
        self.active_out = max_out
        self.active_kernel = max_kernel
        self.stride = 1
        self.dilation = 1

    def configure(self, out_ch: int | None = None, kernel: int | None = None, stride: int = 1,
                  dilation: int = 1) -> None:
        """Sets the active output width (ignored when depthwise), kernel, stride and dilation."""
        kernel = self.max_kernel if kernel is None else kernel
        if kernel > self.max_kernel or kernel % 2 != 1:
            raise ValueError(f"kernel {kernel} must be odd and <= {self.max_kernel}")
        out_ch = self.max_out if out_ch is None else out_ch
        if not 0 < out_ch <= self.max_out:
            raise ValueError(f"output width {out_ch} not in 1..{self.max_out}")
        self.active_out, self.active_kernel, self.stride, self.dilation = out_ch, kernel, stride, dilation

    def active_weight(self, in_ch: int) -> torch.Tensor:
        """The weight slice used for an input of `in_ch` channels."""
        if self.depthwise:
            return _centre(self.weight[:in_ch], self.active_kernel)
        return _centre(self.weight[:self.active_out, :in_ch], self.active_kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Convolution with the active slice; padding keeps 'same' size at stride 1."""
        in_ch = x.shape[1]
        pad = self.dilation * (self.active_kernel - 1) // 2
        groups = in_ch if self.depthwise else 1
        weight = self.active_weight(in_ch)
        # Optional QAT hook (qanas.quant.qat): fake-quantizes the *sliced* weight.
        fake_quant = getattr(self, "weight_fake_quant", None)
        if fake_quant is not None:
            weight = fake_quant(weight)
        return F.conv2d(x, weight, None, self.stride, pad, self.dilation, groups)

    def to_static(self, in_ch: int) -> nn.Conv2d:
        """An `nn.Conv2d` with the active slice copied in."""
        out_ch = in_ch if self.depthwise else self.active_out
        k, d = self.active_kernel, self.dilation
        conv = nn.Conv2d(in_ch, out_ch, k, self.stride, d * (k - 1) // 2, d,
                         in_ch if self.depthwise else 1, bias=False)
        with torch.no_grad():
            conv.weight.copy_(self.active_weight(in_ch))
        return conv


def count_batch(bn: nn.modules.batchnorm._BatchNorm) -> float:
    """Counts one forward batch in `bn` and returns its running-statistics update factor.

    The same rule as `nn.BatchNorm2d.forward`, for modules that call `F.batch_norm` on a
    slice of `bn`'s statistics: in training with running statistics, the batch is counted
    and the factor is ``bn.momentum``, or ``1 / batches counted`` when ``momentum`` is None
    (the cumulative average that BN recalibration uses, `qanas.score.bn`); otherwise
    nothing is counted and the factor is unused by `F.batch_norm`.
    """
    if not (bn.training and bn.track_running_stats):
        return 0.0 if bn.momentum is None else bn.momentum
    bn.num_batches_tracked.add_(1)
    return 1.0 / float(bn.num_batches_tracked) if bn.momentum is None else bn.momentum


class DynamicBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm2d of the max width applied to the first `C` channels of a C-channel input."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Batch norm with parameters and running statistics sliced to the input width."""
        ch = x.shape[1]
        if ch == self.num_features:
            return super().forward(x)
        if ch > self.num_features:
            raise ValueError(f"input has {ch} channels, DynamicBatchNorm2d holds {self.num_features}")
        momentum = count_batch(self)
        use_batch = self.training or not self.track_running_stats
        return F.batch_norm(
            x,
            self.running_mean[:ch] if self.track_running_stats else None,  # views: updated in place
            self.running_var[:ch] if self.track_running_stats else None,
            self.weight[:ch], self.bias[:ch], use_batch, momentum, self.eps,
        )

    def to_static(self, ch: int) -> nn.BatchNorm2d:
        """An `nn.BatchNorm2d` of `ch` channels with the sliced parameters and statistics."""
        bn = nn.BatchNorm2d(ch, self.eps, self.momentum)
        with torch.no_grad():
            bn.weight.copy_(self.weight[:ch])
            bn.bias.copy_(self.bias[:ch])
            bn.running_mean.copy_(self.running_mean[:ch])
            bn.running_var.copy_(self.running_var[:ch])
            bn.num_batches_tracked.copy_(self.num_batches_tracked)
        return bn


class DynamicInvertedResidual(nn.Module):
    """Inverted residual with searchable kernel, expansion, input width, stride and dilation.

    Holds weights for `max_in` inputs, `round(max_in * max_expand)` hidden channels,
    `max_kernel` depthwise kernels and `out_ch` outputs. `configure` picks the path;
    the residual is used when stride == 1 and the active input width equals `out_ch`.

    Example:
        >>> block = DynamicInvertedResidual(24, 24, max_kernel=7, max_expand=6)
        >>> block.configure(in_ch=24, kernel=3, expand=4, stride=1, dilation=1)
    """

    def __init__(self, max_in: int, out_ch: int, max_kernel: int, max_expand: float, act: str = "relu6"):
        super().__init__()
        self.max_in, self.out_ch, self.max_kernel, self.max_expand, self.act = (
            max_in, out_ch, max_kernel, max_expand, act)
        max_hidden = expanded_channels(max_in, max_expand)
        self.conv = nn.Sequential(
            nn.Sequential(DynamicConv2d(max_in, max_hidden, 1), DynamicBatchNorm2d(max_hidden),
                          make_activation(act)),
            nn.Sequential(DynamicConv2d(max_hidden, max_hidden, max_kernel, depthwise=True),
                          DynamicBatchNorm2d(max_hidden), make_activation(act)),
            DynamicConv2d(max_hidden, out_ch, 1),
            DynamicBatchNorm2d(out_ch),
        )
        self.configure(max_in, max_kernel, max_expand, 1, 1)

    def configure(self, in_ch: int, kernel: int, expand: float, stride: int, dilation: int) -> None:
        """Activates one path; raises `ValueError` for settings outside the held weights."""
        if not 0 < in_ch <= self.max_in:
            raise ValueError(f"input width {in_ch} not in 1..{self.max_in}")
        hidden = expanded_channels(in_ch, expand)
        if hidden > expanded_channels(self.max_in, self.max_expand) or hidden == in_ch:
            raise ValueError(f"expansion {expand} of {in_ch} channels is outside (1, {self.max_expand}]")
        self.in_ch, self.kernel, self.expand, self.stride, self.dilation = in_ch, kernel, expand, stride, dilation
        self.hidden = hidden
        self.use_res = stride == 1 and in_ch == self.out_ch
        self.conv[0][0].configure(hidden, 1)
        self.conv[1][0].configure(None, kernel, stride, dilation)
        self.conv[2].configure(self.out_ch, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Runs the active path (the input must have `in_ch` channels)."""
        if x.shape[1] != self.in_ch:
            raise ValueError(f"block configured for {self.in_ch} input channels got {x.shape[1]}")
        y = self.conv(x)
        return x + y if self.use_res else y

    def to_static(self) -> InvertedResidual:
        """The active path as a `blocks.InvertedResidual` with copied weights."""
        block = InvertedResidual(self.in_ch, self.out_ch, self.kernel, self.expand, self.stride,
                                 self.dilation, act=self.act)
        expand_seq, dw_seq, project, project_bn = self.conv
        block.conv[0][0] = expand_seq[0].to_static(self.in_ch)
        block.conv[0][1] = expand_seq[1].to_static(self.hidden)
        block.conv[1][0] = dw_seq[0].to_static(self.hidden)
        block.conv[1][1] = dw_seq[1].to_static(self.hidden)
        block.conv[2] = project.to_static(self.hidden)
        block.conv[3] = project_bn.to_static(self.out_ch)
        block.train(self.training)
        return block


__all__ = ["DynamicBatchNorm2d", "DynamicConv2d", "DynamicInvertedResidual", "count_batch"]
