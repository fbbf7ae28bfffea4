"""Seeded construction without touching the caller's random stream.

PyTorch's layer constructors (``nn.Conv2d`` and the rest) draw their initial weights
from the global RNG only. `seeded(seed)` runs a block with that RNG seeded and gives the
caller back the state it had, so a library function can build the same weights for the
same seed without reseeding anyone else's global RNG.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Runs the block with torch's CPU RNG seeded to `seed`; restores the caller's state after.

    Example:
        >>> with seeded(0):
        ...     layer = torch.nn.Linear(2, 2)  # the same weights for the same seed
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
