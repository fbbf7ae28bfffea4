"""Seeded, calibrated subnets for the mixed-precision (bits) tests."""

from __future__ import annotations

import numpy as np
import torch

from qanas.score import recalibrate_bn
from qanas.supernet import build_supernet


def _batches(n: int, seed: int, size=(32, 64)) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 3, *size, generator=gen) * 1.5 + 0.2 for _ in range(n)]


def seeded_subnet():
    """A seeded squeezenas-small subnet (5 classes) with BatchNorm recalibrated, in eval mode."""
    from qanas.space import get_space

    space = get_space("squeezenas-small")
    torch.manual_seed(0)
    model = build_supernet(space, 5).extract(space.sample(np.random.default_rng(3)))
    recalibrate_bn(model, _batches(2, 1))
    return model.eval()
