"""BatchNorm recalibration: re-estimate running statistics for one extracted subnet.

A weight-sharing supernet's BatchNorm statistics are a mix over every subnet
trained; before a subnet is scored, its statistics are re-estimated on a few
training batches (the standard step of Once-for-All / FairNAS evaluation).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


def _images(batches: Iterable) -> Iterable[torch.Tensor]:
    for batch in batches:
        yield batch[0] if isinstance(batch, (tuple, list)) else batch


@torch.no_grad()
def recalibrate_bn(model: nn.Module, batches: Iterable) -> int:
    """Resets every BatchNorm's running stats and re-estimates them on `batches`.

    Statistics are a cumulative average over the batches (`momentum=None`), so
    the result does not depend on batch order. Forward passes run in train mode
    without gradients; the model is left in eval mode with its momenta restored.

    Args:
        model: the module, modified in place.
        batches: image tensors or `(image, mask)` pairs.

    Returns:
        The number of batches used; 0 (no batches, or no BatchNorm) leaves the
        statistics untouched.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        model.eval()
        return 0
    saved = [(bn.momentum, bn.running_mean.clone(), bn.running_var.clone()) for bn in bns]
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    model.train()
    used = 0
    try:
        for image in _images(batches):
            model(image)
            used += 1
    finally:
        for bn, (momentum, mean, var) in zip(bns, saved, strict=True):
            bn.momentum = momentum
            if used == 0:  # nothing seen: keep the old statistics rather than zeros
                bn.running_mean.copy_(mean)
                bn.running_var.copy_(var)
        model.eval()
    return used
