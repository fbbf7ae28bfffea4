"""qanas.data: segmentation datasets, joint transforms, a seeded loader and mIoU.

Datasets are registered by name in `DATASETS` and built with `build_dataset`:
"synthetic" (generated, the default), "cityscapes", "voc" and "ade20k".

Example:
    >>> from qanas.data import build_dataset, make_loader, ConfusionMatrix
    >>> ds = build_dataset("synthetic", "val", image_size=(64, 128), length=4)
    >>> cm = ConfusionMatrix(ds.num_classes, ds.ignore_index, ds.class_names)
    >>> for images, masks in make_loader(ds, batch_size=2, shuffle=False, seed=0):
    ...     cm.update(masks, masks)
    >>> cm.miou()
    1.0
"""

from __future__ import annotations

# Importing the dataset modules registers them.
from qanas.data import ade20k, cityscapes, synthetic, voc  # noqa: F401
from qanas.data.base import (
    DATASETS,
    IGNORE_INDEX,
    SegmentationDataset,
    build_dataset,
    list_datasets,
)
from qanas.data.loader import SeededSampler, make_loader
from qanas.data.metrics import ConfusionMatrix
from qanas.data.palette import colorize
from qanas.data.transforms import build_transform, denormalize

__all__ = [
    "DATASETS",
    "IGNORE_INDEX",
    "ConfusionMatrix",
    "SeededSampler",
    "SegmentationDataset",
    "build_dataset",
    "build_transform",
    "colorize",
    "denormalize",
    "list_datasets",
    "make_loader",
]
