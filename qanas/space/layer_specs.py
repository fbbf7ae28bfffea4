"""Analytic layer specs of the standard blocks (conv-BN-act, inverted residual, ASPP, LR-ASPP,
the light DeepLabV3+ head).

A space describes its subnets' layers with these (`SearchSpace.layer_specs`), for the
analytic cost models, without building a module: each function returns the
`targets.cost.LayerSpec`s of the `qanas.supernet.blocks` module built with the same
arguments, whose MAC and parameter totals equal a hook count on that module (a tested
invariant). Convolutions pad ``dilation * (k - 1) // 2`` ('same' style).
"""

from __future__ import annotations

from collections.abc import Sequence

from targets.cost import LayerSpec


def conv_out_hw(in_hw: tuple[int, int], k: int, stride: int, dilation: int) -> tuple[int, int]:
    """Output size of a conv with 'same'-style padding `dilation * (k - 1) // 2`."""
    pad = dilation * (k - 1) // 2
    return tuple((s + 2 * pad - dilation * (k - 1) - 1) // stride + 1 for s in in_hw)  # type: ignore[return-value]


def expanded_channels(in_ch: int, expand: float) -> int:
    """Hidden width of an inverted residual, rounded as in torchvision's MobileNetV2."""
    return int(round(in_ch * expand))


def conv_bn_act_specs(name: str, in_ch: int, out_ch: int, in_hw: tuple[int, int], k: int,
                      stride: int = 1, dilation: int = 1, groups: int = 1, act: str | None = "relu6",
                      bias: bool = False) -> list[LayerSpec]:
    """Layer specs of a `ConvBNAct` (BatchNorm is folded into the conv, so it has no spec)."""
    out_hw = conv_out_hw(in_hw, k, stride, dilation)
    specs = [LayerSpec("conv", name, in_ch, out_ch, in_hw, out_hw, (k, k), (stride, stride),
                       (dilation, dilation), groups, bias)]
    if act is not None:
        specs.append(LayerSpec("act", f"{name}.{act}", out_ch, out_ch, out_hw, out_hw))
    return specs


def inverted_residual_specs(name: str, in_ch: int, out_ch: int, in_hw: tuple[int, int], k: int,
                            expand: float, stride: int, dilation: int = 1, groups: int = 1,
                            act: str = "relu6") -> list[LayerSpec]:
    """Layer specs of an `InvertedResidual` built with the same arguments."""
    hidden = expanded_channels(in_ch, expand)
    specs: list[LayerSpec] = []
    if hidden != in_ch:
        specs += conv_bn_act_specs(f"{name}.expand", in_ch, hidden, in_hw, 1, groups=groups, act=act)
    specs += conv_bn_act_specs(f"{name}.dw", hidden, hidden, in_hw, k, stride, dilation, hidden, act)
    out_hw = conv_out_hw(in_hw, k, stride, dilation)
    specs += conv_bn_act_specs(f"{name}.project", hidden, out_ch, out_hw, 1, groups=groups, act=None)
    if stride == 1 and in_ch == out_ch:
        specs.append(LayerSpec("add", f"{name}.add", out_ch, out_ch, out_hw, out_hw))
    return specs


def aspp_specs(name: str, in_ch: int, in_hw: tuple[int, int], rates: Sequence[int], mid_ch: int,
               num_classes: int, depthwise: bool = False, act: str = "relu") -> list[LayerSpec]:
    """Layer specs of an `ASPPHead` built with the same arguments."""
    specs = conv_bn_act_specs(f"{name}.b0", in_ch, mid_ch, in_hw, 1, act=act)
    for i, rate in enumerate(rates, start=1):
        if depthwise:
            specs += conv_bn_act_specs(f"{name}.b{i}.dw", in_ch, in_ch, in_hw, 3, 1, rate, in_ch, act)
            specs += conv_bn_act_specs(f"{name}.b{i}.pw", in_ch, mid_ch, in_hw, 1, act=act)
        else:
            specs += conv_bn_act_specs(f"{name}.b{i}", in_ch, mid_ch, in_hw, 3, 1, rate, act=act)
    specs.append(LayerSpec("global_pool", f"{name}.pool", in_ch, in_ch, in_hw, (1, 1)))
    specs += conv_bn_act_specs(f"{name}.pool.conv", in_ch, mid_ch, (1, 1), 1, act=act)
    specs.append(LayerSpec("resize", f"{name}.pool.resize", mid_ch, mid_ch, (1, 1), in_hw))
    n_branches = len(rates) + 2
    specs.append(LayerSpec("concat", f"{name}.cat", mid_ch * n_branches, mid_ch * n_branches, in_hw, in_hw))
    specs += conv_bn_act_specs(f"{name}.project", mid_ch * n_branches, mid_ch, in_hw, 1, act=act)
    specs += conv_bn_act_specs(f"{name}.refine", mid_ch, mid_ch, in_hw, 3, act=act)
    specs += conv_bn_act_specs(f"{name}.classifier", mid_ch, num_classes, in_hw, 1, act=None, bias=True)
    return specs


def lite_plus_specs(name: str, high_ch: int, low_ch: int, mid_ch: int, low_out: int, num_classes: int,
                    high_hw: tuple[int, int], low_hw: tuple[int, int], act: str = "relu") -> list[LayerSpec]:
    """Layer specs of a `LiteDeepLabV3PlusHead` built with the same arguments."""
    specs = conv_bn_act_specs(f"{name}.b0", high_ch, mid_ch, high_hw, 1, act=act)
    specs.append(LayerSpec("global_pool", f"{name}.pool", high_ch, high_ch, high_hw, (1, 1)))
    specs += conv_bn_act_specs(f"{name}.pool.conv", high_ch, mid_ch, (1, 1), 1, act=act)
    specs.append(LayerSpec("resize", f"{name}.pool.resize", mid_ch, mid_ch, (1, 1), high_hw))
    specs.append(LayerSpec("concat", f"{name}.cat", 2 * mid_ch, 2 * mid_ch, high_hw, high_hw))
    specs += conv_bn_act_specs(f"{name}.project", 2 * mid_ch, mid_ch, high_hw, 1, act=act)
    specs.append(LayerSpec("resize", f"{name}.resize", mid_ch, mid_ch, high_hw, low_hw))
    specs += conv_bn_act_specs(f"{name}.low", low_ch, low_out, low_hw, 1, act=act)
    fused = mid_ch + low_out
    specs.append(LayerSpec("concat", f"{name}.fuse_cat", fused, fused, low_hw, low_hw))
    specs += conv_bn_act_specs(f"{name}.fuse.dw", fused, fused, low_hw, 3, groups=fused, act=act)
    specs += conv_bn_act_specs(f"{name}.fuse.pw", fused, mid_ch, low_hw, 1, act=act)
    specs += conv_bn_act_specs(f"{name}.classifier", mid_ch, num_classes, low_hw, 1, act=None, bias=True)
    return specs


def lraspp_specs(name: str, high_ch: int, low_ch: int, mid_ch: int, num_classes: int,
                 high_hw: tuple[int, int], low_hw: tuple[int, int], act: str = "relu") -> list[LayerSpec]:
    """Layer specs of an `LRASPPHead` built with the same arguments."""
    specs = conv_bn_act_specs(f"{name}.cbr", high_ch, mid_ch, high_hw, 1, act=act)
    specs.append(LayerSpec("global_pool", f"{name}.pool", high_ch, high_ch, high_hw, (1, 1)))
    specs += conv_bn_act_specs(f"{name}.scale", high_ch, mid_ch, (1, 1), 1, act="sigmoid")
    specs.append(LayerSpec("mul", f"{name}.mul", mid_ch, mid_ch, high_hw, high_hw))
    specs.append(LayerSpec("resize", f"{name}.resize", mid_ch, mid_ch, high_hw, low_hw))
    specs += conv_bn_act_specs(f"{name}.low_classifier", low_ch, num_classes, low_hw, 1, act=None, bias=True)
    specs += conv_bn_act_specs(f"{name}.high_classifier", mid_ch, num_classes, low_hw, 1, act=None, bias=True)
    specs.append(LayerSpec("add", f"{name}.add", num_classes, num_classes, low_hw, low_hw))
    return specs


__all__ = ["aspp_specs", "conv_bn_act_specs", "conv_out_hw", "expanded_channels",
           "inverted_residual_specs", "lite_plus_specs", "lraspp_specs"]
