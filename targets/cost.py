"""Plain layer descriptors and the analytic counts derived from them.

Search spaces describe a subnet as a list of `LayerSpec`s (no torch needed);
MACs, parameters and activation sizes follow from shapes alone. Hardware cost
models per target build on the same descriptors.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LayerSpec:
    """One layer of a network, by shape.

    `op` is one of: conv (incl. depthwise/grouped via `groups`), linear, add,
    concat, pool_avg, pool_max, global_pool, resize, act (elementwise
    activation), mul (elementwise/broadcast multiply), matmul (a batched product of
    two activations on a token grid: `in_channels` is the reduction length and
    `out_channels` the output values per grid position; no weights), softmax.
    Spatial sizes are (H, W).
    """

    op: str
    name: str
    in_channels: int
    out_channels: int
    in_hw: tuple[int, int]
    out_hw: tuple[int, int]
    kernel: tuple[int, int] = (1, 1)
    stride: tuple[int, int] = (1, 1)
    dilation: tuple[int, int] = (1, 1)
    groups: int = 1
    bias: bool = False

    @property
    def macs(self) -> int:
        """Multiply-accumulates (conv/linear/matmul); elementwise ops count zero."""
        if self.op in ("conv", "linear", "matmul"):
            kh, kw = self.kernel
            per_out = kh * kw * (self.in_channels // self.groups)
            return per_out * self.out_channels * self.out_hw[0] * self.out_hw[1]
        return 0

    @property
    def params(self) -> int:
        """Trainable parameters (weights + bias) of conv/linear layers."""
        if self.op in ("conv", "linear"):
            kh, kw = self.kernel
            weights = kh * kw * (self.in_channels // self.groups) * self.out_channels
            return weights + (self.out_channels if self.bias else 0)
        return 0

    @property
    def input_elements(self) -> int:
        """Elements of the (first) input activation."""
        return self.in_channels * self.in_hw[0] * self.in_hw[1]

    @property
    def output_elements(self) -> int:
        """Elements of the output activation."""
        return self.out_channels * self.out_hw[0] * self.out_hw[1]


def total_macs(layers: list[LayerSpec]) -> int:
    """Sum of MACs over `layers`."""
    return sum(layer.macs for layer in layers)


def total_params(layers: list[LayerSpec]) -> int:
    """Sum of parameters over `layers`."""
    return sum(layer.params for layer in layers)


def peak_activation_elements(layers: list[LayerSpec]) -> int:
    """Largest input + output activation pair of any single layer (a quick SRAM proxy)."""
    return max((layer.input_elements + layer.output_elements for layer in layers), default=0)
