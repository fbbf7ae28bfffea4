"""Quick validation during supernet training: BN recalibration, subnet mIoU, trivial baseline.

A supernet's BatchNorm running statistics mix every path it trained, so a
subnet is evaluated on a copy of the supernet whose BN statistics were
re-estimated on a few training batches with that subnet active (the standard
SPOS/FairNAS practice, with `qanas.score`'s `recalibrate_bn`). The supernet being trained is never modified.

The trivial baseline predicts the most frequent training class everywhere: a
subnet that does not beat its mIoU has learned nothing about the scene.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence

import torch
from torch import nn

from qanas.space.base import SubnetConfig
from qanas.supernet.base import Supernet


def _confusion_matrix(num_classes: int, ignore_index: int):
    from qanas.data import ConfusionMatrix

    return ConfusionMatrix(num_classes, ignore_index)


def recalibrate_bn(model: nn.Module, batches: Iterable) -> int:
    """Re-estimates BatchNorm statistics on `batches`: `qanas.score.bn.recalibrate_bn`.

    Imported lazily so that `qanas.score` may itself depend on `qanas.train`.
    """
    from qanas.score.bn import recalibrate_bn as score_recalibrate_bn

    return score_recalibrate_bn(model, batches)


@torch.no_grad()
def subnet_miou(supernet: Supernet, cfg: SubnetConfig,
                calib_batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
                val_batches: Sequence[tuple[torch.Tensor, torch.Tensor]],
                ignore_index: int) -> float:
    """mIoU of subnet `cfg` on `val_batches` after BN recalibration on `calib_batches`.

    Works on a deep copy, so the supernet's weights, BN buffers and active
    subnet are unchanged.
    """
    model = copy.deepcopy(supernet)
    model.set_active(cfg)
    recalibrate_bn(model, calib_batches)
    matrix = _confusion_matrix(supernet.num_classes, ignore_index)
    for image, mask in val_batches:
        matrix.update(model(image).argmax(1), mask)
    return float(matrix.miou())


def class_histogram(batches: Iterable[tuple[torch.Tensor, torch.Tensor]], num_classes: int,
                    ignore_index: int) -> torch.Tensor:
    """Pixel count per class over the masks of `batches` (ignored pixels excluded)."""
    counts = torch.zeros(num_classes, dtype=torch.int64)
    for _, mask in batches:
        valid = mask[mask != ignore_index]
        counts += torch.bincount(valid.flatten(), minlength=num_classes)[:num_classes]
    return counts


def majority_class_miou(train_batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                        val_batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
                        num_classes: int, ignore_index: int) -> dict[str, float | int]:
    """mIoU on `val_batches` of predicting the most frequent class of `train_batches` everywhere.

    Returns:
        {"majority_class": c, "miou": m}.
    """
    majority = int(class_histogram(train_batches, num_classes, ignore_index).argmax())
    matrix = _confusion_matrix(num_classes, ignore_index)
    for _, mask in val_batches:
        matrix.update(torch.full_like(mask, majority), mask)
    return {"majority_class": majority, "miou": float(matrix.miou())}
