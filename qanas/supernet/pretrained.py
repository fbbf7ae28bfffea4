"""Initialise a MobileNetV2 supernet's encoder from a torchvision-layout MobileNetV2 state dict.

torchvision names the encoder `features.0.0.weight` (stem conv), `features.0.1.*`
(its BatchNorm), `features.{i}.conv.{j}...` (inverted residuals) — the names the
supernet uses too, so keys map by name. Shapes differ where the supernet holds
larger choices: a 3×3 kernel goes into the centre of the 7×7 max kernel and the
expansion-6 channels fill the first channels of the max expansion (OFA's
convention, so the seed subnet reproduces the pretrained network exactly).
`features.18` (the 1280-channel conv) and `classifier.*` have no counterpart
and are reported as unused.

Example:
    >>> net = build_supernet(get_space("mbv2-deeplab"), 19)  # doctest: +SKIP
    >>> report = load_mobilenet_v2_file(net, "mobilenet_v2.pth")  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from qanas.errors import CheckpointError

WRAPPER_KEYS = ("state_dict", "model")


@dataclass
class LoadReport:
    """Outcome of a load: supernet keys filled, supernet encoder keys left as they were, unused source keys."""

    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unused: list[str] = field(default_factory=list)


def _copy_into(dst: torch.Tensor, src: torch.Tensor, key: str) -> None:
    """Copies `src` into the leading channels (and centred kernel window) of `dst`."""
    if dst.dim() != src.dim():
        raise CheckpointError(f"{key}: checkpoint tensor has shape {tuple(src.shape)}, the supernet expects "
                              f"{dst.dim()} dimensions {tuple(dst.shape)}; is this a MobileNetV2 (width 1.0)?")
    index = []
    for axis, (d, s) in enumerate(zip(dst.shape, src.shape, strict=True)):
        if s > d:
            raise CheckpointError(f"{key}: checkpoint shape {tuple(src.shape)} does not fit the supernet's "
                                  f"{tuple(dst.shape)} (axis {axis}); use a width-1.0 torchvision MobileNetV2")
        if dst.dim() == 4 and axis >= 2:
            if (d - s) % 2:
                raise CheckpointError(f"{key}: kernel {s} cannot be centred in the supernet's kernel {d}")
            start = (d - s) // 2
            index.append(slice(start, start + s))
        else:
            index.append(slice(0, s))
    with torch.no_grad():
        dst[tuple(index)].copy_(src)


def load_mobilenet_v2_state_dict(supernet: nn.Module, state_dict: dict[str, torch.Tensor]) -> LoadReport:
    """Loads torchvision MobileNetV2 encoder weights into `supernet.features`.

    Args:
        supernet: a module whose `features` follows torchvision's indices (e.g.
            `MobileNetV2Supernet`).
        state_dict: torchvision key layout; a `module.` prefix (DataParallel) is stripped.

    Returns:
        A `LoadReport`. Raises `CheckpointError` on a shape that does not fit or
        when no key matches (wrong layout).
    """
    target = supernet.state_dict()
    report = LoadReport()
    for raw_key, value in state_dict.items():
        key = raw_key.removeprefix("module.")
        if not key.startswith("features.") or key not in target:
            report.unused.append(raw_key)
            continue
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{raw_key}: expected a tensor, got {type(value).__name__}")
        _copy_into(target[key], value.to(target[key].dtype), raw_key)
        report.loaded.append(key)
    if not report.loaded:
        sample = ", ".join(list(state_dict)[:3]) or "(empty)"
        raise CheckpointError(f"no key of the checkpoint matches torchvision's MobileNetV2 layout "
                              f"('features.0.0.weight', ...); first keys: {sample}")
    loaded = set(report.loaded)
    report.missing = [k for k in target if k.startswith("features.") and k not in loaded]
    return report


def load_mobilenet_v2_file(supernet: nn.Module, path: str | Path) -> LoadReport:
    """Reads a MobileNetV2 state dict file (optionally under a 'state_dict'/'model' key) and loads it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"MobileNetV2 checkpoint {path} does not exist")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for corrupt files
        raise CheckpointError(f"cannot read MobileNetV2 checkpoint {path}: {exc}") from exc
    for wrapper in WRAPPER_KEYS:
        if isinstance(data, dict) and isinstance(data.get(wrapper), dict):
            data = data[wrapper]
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} holds a {type(data).__name__}, expected a state dict")
    return load_mobilenet_v2_state_dict(supernet, data)


__all__ = ["LoadReport", "load_mobilenet_v2_file", "load_mobilenet_v2_state_dict"]
