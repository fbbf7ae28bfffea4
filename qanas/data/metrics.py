"""mIoU from an accumulated confusion matrix.

Rows of the matrix are ground-truth classes, columns predicted classes.
Pixels whose target is `ignore_index` are dropped before counting. A class
that appears in neither targets nor predictions has no IoU (NaN) and is left
out of the mean, the convention of the Cityscapes and VOC benchmarks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch


def _as_numpy(x: torch.Tensor | np.ndarray) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


class ConfusionMatrix:
    """Accumulates a `[num_classes, num_classes]` confusion matrix over batches.

    Args:
        num_classes: number of classes; valid ids are `0..num_classes-1`.
        ignore_index: target value of pixels that are not counted.
        class_names: optional names used as keys by `to_dict()`.

    Example:
        >>> cm = ConfusionMatrix(2)
        >>> cm.update(np.array([0, 1, 1, 0]), np.array([0, 1, 0, 255]))
        >>> round(cm.miou(), 4)
        0.5
    """

    def __init__(self, num_classes: int, ignore_index: int = 255,
                 class_names: Sequence[str] | None = None):
        if int(num_classes) <= 0:
            raise ValueError(f"num_classes must be positive; got {num_classes!r}")
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class names given for {num_classes} classes")
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.class_names = tuple(class_names) if class_names is not None else tuple(
            str(i) for i in range(self.num_classes))
        self.matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    def reset(self) -> None:
        """Clears the accumulated counts."""
        self.matrix[:] = 0

    def update(self, pred: torch.Tensor | np.ndarray, target: torch.Tensor | np.ndarray) -> None:
        """Adds a batch.

        Args:
            pred: predicted class ids of the target's shape, or logits with one
                more dimension at axis 1 (`[N, C, H, W]` for an `[N, H, W]` target),
                which are reduced with argmax.
            target: ground-truth ids in `0..num_classes-1` or `ignore_index`.

        Raises:
            ValueError: on mismatched shapes or ids out of range.
        """
        p, t = _as_numpy(pred), _as_numpy(target)
        if p.ndim == t.ndim + 1:
            if p.shape[1] != self.num_classes:
                raise ValueError(f"logits have {p.shape[1]} channels at axis 1 but the matrix "
                                 f"has {self.num_classes} classes")
            p = p.argmax(axis=1)
        if p.shape != t.shape:
            raise ValueError(f"prediction shape {p.shape} does not match target shape {t.shape}")
        p = p.reshape(-1).astype(np.int64, copy=False)
        t = t.reshape(-1).astype(np.int64, copy=False)
        keep = t != self.ignore_index
        p, t = p[keep], t[keep]
        if t.size == 0:
            return
        n = self.num_classes
        for what, ids in (("target", t), ("prediction", p)):
            lo, hi = int(ids.min()), int(ids.max())
            if lo < 0 or hi >= n:
                raise ValueError(f"{what} holds class id {lo if lo < 0 else hi}, outside 0..{n - 1}"
                                 f" (ignore index {self.ignore_index}); check num_classes and "
                                 f"the dataset's label mapping")
        self.matrix += np.bincount(t * n + p, minlength=n * n).reshape(n, n)

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Adds the counts of another matrix of the same size (e.g. from another worker)."""
        if other.num_classes != self.num_classes:
            raise ValueError(f"cannot merge a {other.num_classes}-class matrix into a "
                             f"{self.num_classes}-class one")
        self.matrix += other.matrix
        return self

    def per_class_iou(self) -> np.ndarray:
        """IoU per class, `tp / (tp + fp + fn)`; NaN where a class is in neither input."""
        tp = np.diag(self.matrix).astype(np.float64)
        union = self.matrix.sum(0) + self.matrix.sum(1) - np.diag(self.matrix)
        iou = np.full(self.num_classes, np.nan)
        present = union > 0
        iou[present] = tp[present] / union[present]
        return iou

    def miou(self) -> float:
        """Mean IoU over the classes that have one; NaN before any pixel was counted."""
        iou = self.per_class_iou()
        valid = iou[~np.isnan(iou)]
        return float(valid.mean()) if valid.size else math.nan

    def pixel_accuracy(self) -> float:
        """Fraction of counted pixels predicted correctly; NaN when nothing was counted."""
        total = self.matrix.sum()
        return float(np.trace(self.matrix) / total) if total else math.nan

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: mIoU, pixel accuracy, per-class IoU (None for NaN), pixels."""
        def clean(v: float) -> float | None:
            return None if math.isnan(v) else float(v)

        return {
            "miou": clean(self.miou()),
            "pixel_accuracy": clean(self.pixel_accuracy()),
            "per_class_iou": dict(zip(self.class_names, map(clean, self.per_class_iou()),
                                      strict=True)),
            "num_pixels": int(self.matrix.sum()),
        }
