"""Bias quantizers whose integer codes survive the float32 round trip of the export.

Brevitas computes an int32 bias as `clamp(round(b / s), -2^31, 2^31 - 1) * s` in
float32, with `s` = input scale x weight scale. Two things go wrong when `|b / s|`
is large (a conv whose input range is tiny, e.g. after a chain of BatchNorms with
untrained statistics):

* the upper bound 2^31 - 1 is not a float32: it rounds to 2^31, so a saturated
  positive bias is `2^31 * s` in fake quantization, and the exporter's cast of
  2^31 to int32 wraps to -2^31. onnxruntime then adds a *negative* bias (found on
  the LR-ASPP `high_classifier` of the squeezenas seed subnets: 25 % and 75 % of
  the output classes off by up to 15 steps).
* a saturated code leaves the int32 accumulator of the integer kernel no room for
  the products that are added to it.

`Int32BiasHeadroom` saturates 32-bit bias codes at +-2^30 instead: exact in
float32, its round trip `fl(fl(k * s) / s)` stays below 2^31 (float32 relative
error 2^-24 per operation), and it leaves one bit of accumulator headroom.
16- and 24-bit bias bounds are exact in float32 and need no change.
"""

from __future__ import annotations

import torch
from brevitas.function.ops import tensor_clamp
from brevitas.quant import Int32Bias
from torch import Tensor, nn

__all__ = ["INT32_BIAS_LIMIT", "HeadroomClamp", "Int32BiasHeadroom"]

INT32_BIAS_LIMIT = 2.0 ** 30
"""Largest |code| of a 32-bit bias: a power of two (exact in float32), half the int32 range."""


class HeadroomClamp(nn.Module):
    """`TensorClamp` with the bounds narrowed to `[-INT32_BIAS_LIMIT, INT32_BIAS_LIMIT]`."""

    def __init__(self) -> None:  # explicit: Brevitas's injector rejects `*args, **kwargs`
        super().__init__()

    def forward(self, x: Tensor, min_val: Tensor, max_val: Tensor) -> Tensor:
        """Clamps integer codes `x` to the narrowed `[min_val, max_val]`."""
        return tensor_clamp(x, min_val=torch.clamp(min_val, min=-INT32_BIAS_LIMIT),
                            max_val=torch.clamp(max_val, max=INT32_BIAS_LIMIT))


class Int32BiasHeadroom(Int32Bias):
    """Brevitas `Int32Bias` (scale = input x weight scale) saturating at +-2^30."""

    tensor_clamp_impl = HeadroomClamp
