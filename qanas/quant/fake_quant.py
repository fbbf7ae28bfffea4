"""Lean fake quantization with Brevitas's numerics: quantizers, their calibration, and the ops.

`qanas.quant.quant_graph` decides *where* a subnet is quantized and which quantizers
share a scale (the same decisions `quantize_model` makes through Brevitas); this
module holds *how*, in plain torch ops:

* a `ScaleGroup` is one Brevitas `ParameterFromRuntimeStatsScaling` with its integer
  scaling: during calibration every tensor it observes contributes the percentile of
  its magnitudes (`AbsPercentile`: the k-th smallest |x| with
  `k = floor(q / 100 * numel + 0.5)`, clamped at 1e-10), averaged over the calls; its
  scale is that average divided by the threshold of the quantizer that created it
  (2^(b-1) signed, 2^b - 1 unsigned). Brevitas finds the k-th value with `kthvalue`;
  here the same element is found from the few largest values (`percentile_of_magnitude`),
  at a fraction of the cost for percentiles near 100.
* an `ActQuantizer` (a Brevitas `tensor_quant`) rounds to its group's scale and
  clamps to its own signed or unsigned range: `clamp(round(x / s), lo, hi) * s`.
* `quantize_weight` / `quantize_bias` are Brevitas's narrow-range per-channel weight
  quantizer (absmax / (2^(b-1) - 1)) and its bias quantizer (scale = input scale x
  weight scale, 32-bit codes saturated at +-2^30 as `qanas.quant.bias` does).
"""

from __future__ import annotations

import math

import torch

from qanas.quant.bias import INT32_BIAS_LIMIT

_ROW = 1024
_DIRECT_TOPK = 64
_SLICE = 1 << 18
SCALING_MIN_VAL = 1e-10
"""Brevitas's lower bound on every statistic and scale (`scaling_min_val`)."""


def percentile_of_magnitude(x: torch.Tensor, q: float, nonnegative: bool = False) -> torch.Tensor:
    """Brevitas's `AbsPercentile(q)` of a tensor: the k-th smallest |x|, k = floor(q% * n + 0.5).

    For q close to 100 it is the m-th largest |x|, m = n - k + 1 (a handful), found
    without sorting and without materialising |x|. Split `x` into rows of 1024 and
    take the m rows with the largest maximum |x| (from each row's max and min): every
    other row holds only values <= the m-th of those maxima, itself <= the answer, so
    the answer is the m-th largest |x| of those m rows and the tail beyond the last
    whole row. The element is exactly `kthvalue`'s, at a fraction of its cost; a small
    tensor takes `topk` (m <= 64) or `kthvalue` directly.

    Args:
        x: the tensor observed.
        q: the percentile, in (0, 100].
        nonnegative: the caller knows `x >= 0` (a ReLU's output), so rows need only
            their max. Only a speed hint: a wrong True gives a wrong result.
    """
    flat = x.detach().reshape(-1)
    n = flat.numel()
    k = min(max(int(math.floor(0.01 * q * n + 0.5)), 1), n)
    largest = n - k + 1
    rows = n // _ROW
    if largest > rows // 4:  # a low percentile or a small tensor: select directly
        if largest <= _DIRECT_TOPK:
            return flat.abs().topk(largest).values[-1]
        return flat.abs().kthvalue(k).values
    body = flat[:rows * _ROW].view(rows, _ROW)
    row_max = body.amax(dim=1)
    if not nonnegative:
        row_max = torch.maximum(row_max, body.amin(dim=1).neg_())
    candidates = body.index_select(0, row_max.topk(largest).indices).reshape(-1)
    if rows * _ROW < n:
        candidates = torch.cat([candidates, flat[rows * _ROW:]])
    if not nonnegative:
        candidates = candidates.abs_()
    return candidates.topk(largest).values[-1]


class ScaleGroup:
    """One calibrated scale, shared by every quantizer aligned to it.

    Args:
        threshold: integer scaling of the quantizer that created the group (2^(b-1)
            for signed, 2^b - 1 for unsigned), fixed for the group's life.
        percentile: the calibration percentile (`QuantSpec.act_percentile`).
    """

    __slots__ = ("threshold", "percentile", "count", "value", "_scale")

    def __init__(self, threshold: float, percentile: float):
        self.threshold = float(threshold)
        self.percentile = float(percentile)
        self.reset()

    def reset(self) -> None:
        """Forgets every observation (the group is uncalibrated again)."""
        self.count = 0
        self.value: torch.Tensor | None = None
        self._scale: torch.Tensor | None = None

    def observe(self, x: torch.Tensor, nonnegative: bool = False) -> None:
        """Adds one tensor's statistic to the running average (Brevitas's true average).

        `nonnegative`: `x >= 0` is known (see `percentile_of_magnitude`).
        """
        stat = torch.clamp(percentile_of_magnitude(x, self.percentile, nonnegative),
                           min=SCALING_MIN_VAL)
        new_count = self.count + 1
        if self.value is None:
            self.value = stat.clone()
        else:
            self.value.mul_(self.count / new_count)
            self.value.add_(stat / new_count)
        self.count = new_count
        self._scale = None

    @property
    def scale(self) -> torch.Tensor:
        """The calibrated scale (a 0-d tensor).

        Raises:
            RuntimeError: before any observation.
        """
        if self._scale is None:
            if self.value is None:
                raise RuntimeError("scale group used before calibration; call calibrate() first")
            # floored before (each statistic) and after the division, as Brevitas does:
            # a dead activation (all zeros) gets 1e-10, not 1e-10 / threshold
            self._scale = torch.clamp(torch.clamp(self.value, min=SCALING_MIN_VAL) / self.threshold,
                                      min=SCALING_MIN_VAL)
        return self._scale


class ActQuantizer:
    """Per-tensor activation fake quantizer: its group's scale, its own integer range."""

    __slots__ = ("group", "signed", "bits", "low", "high")

    def __init__(self, group: ScaleGroup, signed: bool, bits: int):
        self.group = group
        self.signed = bool(signed)
        self.bits = int(bits)
        self.low = -(2 ** (bits - 1)) if signed else 0
        self.high = 2 ** (bits - 1) - 1 if signed else 2 ** bits - 1

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """`clamp(round(x / s), low, high) * s` (round half to even, as Brevitas)."""
        scale = self.group.scale
        out = torch.div(x, scale)
        return out.round_().clamp_(self.low, self.high).mul_(scale)

    def quantize_(self, x: torch.Tensor, act_=None) -> torch.Tensor:
        """`self(act(x))` computed in `x`'s own storage, which the caller must own.

        `act_` is an optional in-place activation (`torch.relu_`). Every step is
        elementwise, so a large contiguous tensor is processed in slices of `_SLICE`
        elements that stay in cache across the passes (about twice as fast as
        whole-tensor passes at 64x128 x 32 images). A ReLU before an unsigned
        quantizer costs no pass of its own: for s > 0, relu(x) / s = max(x / s, 0),
        and clamping to the integer range [0, high] before rounding gives what
        rounding then clamping gives, positive zeros included. The values are those
        of `self(act(x))`.
        """
        scale = self.group.scale
        fold_relu = act_ is torch.relu_ and self.low == 0
        slices = (x.view(-1).split(_SLICE) if x.is_contiguous() and x.numel() > _SLICE
                  else (x,))
        for part in slices:
            if fold_relu:
                part.div_(scale).clamp_(0, self.high).round_().mul_(scale)
                continue
            if act_ is not None:
                act_(part)
            part.div_(scale).round_().clamp_(self.low, self.high).mul_(scale)
        return x


def new_act_quantizer(signed: bool, bits: int, percentile: float) -> ActQuantizer:
    """A quantizer with a group of its own (threshold from its own sign and bits)."""
    threshold = 2 ** (bits - 1) if signed else 2 ** bits - 1
    return ActQuantizer(ScaleGroup(threshold, percentile), signed, bits)


def weight_scale(weight: torch.Tensor, bits: int, per_channel: bool,
                 narrow_range: bool) -> torch.Tensor:
    """Brevitas's stats scale of a weight: absmax (per output channel or tensor), floored at
    `SCALING_MIN_VAL`, / threshold.

    Unlike an activation's scale it is not floored again after the division: a channel of
    zeros (a zero-initialised BatchNorm folded in) gets 1e-10 / threshold, as in Brevitas.
    """
    if per_channel:
        stat = weight.detach().abs().reshape(weight.shape[0], -1).amax(dim=1)
        stat = stat.reshape(-1, *([1] * (weight.dim() - 1)))
    else:
        stat = weight.detach().abs().amax()
    threshold = 2 ** (bits - 1) - 1 if narrow_range else 2 ** (bits - 1)
    return torch.clamp(stat, min=SCALING_MIN_VAL) / threshold


def quantize_weight(weight: torch.Tensor, scale: torch.Tensor, bits: int,
                    narrow_range: bool) -> torch.Tensor:
    """Fake-quantized weight: `clamp(round(w / s), -m, m) * s` (m = 2^(b-1) - 1 if narrow)."""
    high = 2 ** (bits - 1) - 1
    low = -high if narrow_range else -(2 ** (bits - 1))
    return torch.clamp(torch.round(weight / scale), low, high) * scale


def quantize_bias(bias: torch.Tensor, input_scale: torch.Tensor, weight_scale_: torch.Tensor,
                  bits: int) -> torch.Tensor:
    """Fake-quantized bias with scale input x weight scale (32-bit codes within +-2^30)."""
    scale = (input_scale * weight_scale_).reshape(-1)
    if bits == 32:
        low, high = -INT32_BIAS_LIMIT, INT32_BIAS_LIMIT
    else:
        low, high = -(2.0 ** (bits - 1)), 2.0 ** (bits - 1) - 1
    return torch.clamp(torch.round(bias / scale), low, high) * scale


__all__ = [
    "ActQuantizer",
    "ScaleGroup",
    "new_act_quantizer",
    "percentile_of_magnitude",
    "quantize_bias",
    "quantize_weight",
    "weight_scale",
]
