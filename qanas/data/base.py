"""The segmentation dataset base class, the dataset registry and its factory.

Every dataset yields `(image, mask)` pairs: `image` is float32 `[3, H, W]`,
normalized with the dataset's `mean`/`std`; `mask` is int64 `[H, W]` holding
train ids `0..num_classes-1` and `ignore_index` (255) for unlabelled pixels.
Subclasses only implement `_load(index)`, returning the raw uint8 image and
the mask already mapped to train ids; resizing, augmentation and normalization
are shared here so that every dataset behaves the same.

Randomness is explicit: the augmentation of a sample is drawn from a numpy
Generator seeded by `(dataset seed, sample seed)`. `dataset[i]` uses the index
as sample seed (so it is reproducible); the loader of `qanas.data.loader`
passes `(i, sample_seed)` keys with a fresh seed per epoch.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from qanas.data.transforms import IMAGENET_MEAN, IMAGENET_STD, build_transform, to_tensor
from qanas.errors import ConfigError
from targets.registry import Registry

IGNORE_INDEX = 255

DATASETS: Registry[type[SegmentationDataset]] = Registry("dataset")


def check_image_size(image_size: Sequence[int]) -> tuple[int, int]:
    """Validates an `(H, W)` image size and returns it as a tuple of ints.

    Args:
        image_size: two positive integers, height then width.

    Returns:
        `(H, W)`.

    Raises:
        ConfigError: if `image_size` is not two positive integers.
    """
    try:
        h, w = (int(v) for v in image_size)
    except (TypeError, ValueError):
        raise ConfigError(
            f"image_size must be two integers (H, W), e.g. (64, 128); got {image_size!r}"
        ) from None
    if h <= 0 or w <= 0 or (h, w) != tuple(image_size):
        raise ConfigError(
            f"image_size must be two positive integers (H, W), e.g. (64, 128); got {image_size!r}"
        )
    return h, w


class SegmentationDataset(Dataset):
    """A semantic segmentation dataset of `(image, mask)` tensor pairs.

    Attributes:
        name: the registry name.
        class_names: one name per train id.
        num_classes: `len(class_names)`.
        ignore_index: mask value of unlabelled pixels (255).
        splits: the split names this dataset accepts.
        mean, std: per-channel normalization applied to images in [0, 1].
        split, image_size, seed, augment: as passed to the constructor.
    """

    name: str = ""
    class_names: tuple[str, ...] = ()
    splits: tuple[str, ...] = ("train", "val")
    ignore_index: int = IGNORE_INDEX
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def __init__(self, split: str, image_size: Sequence[int], seed: int = 0,
                 augment: bool = False):
        if split not in self.splits:
            raise ConfigError(
                f"dataset {self.name!r} has no split {split!r}; valid splits: "
                f"{', '.join(self.splits)}"
            )
        self.split = split
        self.image_size = check_image_size(image_size)
        self.seed = int(seed)
        self.augment = bool(augment)
        self.transform = build_transform(self.image_size, self.augment, self.mean, self.std,
                                         self.ignore_index)

    @property
    def num_classes(self) -> int:
        """Number of classes (train ids `0..num_classes-1`)."""
        return len(self.class_names)

    def __len__(self) -> int:
        raise NotImplementedError(f"{type(self).__name__} must define __len__")

    def _load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Returns the raw uint8 `[H, W, 3]` image and uint8 `[H, W]` train-id mask."""
        raise NotImplementedError(f"{type(self).__name__} must define _load(index)")

    def __getitem__(self, key: int | tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
        """Returns sample `key` (an index, or `(index, sample_seed)` from the loader)."""
        if isinstance(key, tuple):
            index, sample_seed = int(key[0]), int(key[1])
        else:
            index, sample_seed = int(key), int(key)
        n = len(self)
        if not -n <= index < n:
            raise IndexError(f"index {index} out of range for {self.name} {self.split} "
                             f"of length {n}")
        index %= n
        image, mask = self._load(index)
        rng = np.random.default_rng([self.seed, sample_seed])
        return self.transform(*to_tensor(image, mask), rng)

    def load_raw(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        """Sample `index` before resizing/normalization: uint8 image and train-id mask.

        Args:
            index: sample index in `[0, len(self))`.

        Returns:
            `(image [H, W, 3] uint8, mask [H, W] uint8)` at the stored resolution.
        """
        return self._load(int(index))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable description for run metadata."""
        return {
            "name": self.name,
            "split": self.split,
            "image_size": list(self.image_size),
            "seed": self.seed,
            "augment": self.augment,
            "length": len(self),
            "num_classes": self.num_classes,
            "ignore_index": self.ignore_index,
            "mean": list(self.mean),
            "std": list(self.std),
        }

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(split={self.split!r}, image_size={self.image_size}, "
                f"length={len(self)}, num_classes={self.num_classes}, augment={self.augment})")


def list_datasets() -> list[str]:
    """Names of the registered datasets, sorted."""
    return DATASETS.names()


def build_dataset(name: str, split: str, image_size: Sequence[int] = (64, 128),
                  root: str | None = None, seed: int = 0, augment: bool = False,
                  **kw: Any) -> SegmentationDataset:
    """Builds a registered dataset by name.

    Args:
        name: a registered dataset name (see `list_datasets()`), e.g. "synthetic".
        split: "train" or "val" (datasets may accept more, see their `splits`).
        image_size: output `(H, W)` of every sample.
        root: the dataset folder; required by the folder datasets, refused by "synthetic".
        seed: seeds the synthetic scenes and every augmentation draw.
        augment: apply random scale-crop and horizontal flip.
        **kw: dataset-specific options (e.g. `length` for "synthetic").

    Returns:
        The dataset, a `torch.utils.data.Dataset` of `(image, mask)` pairs.

    Raises:
        UnknownNameError: for an unregistered name (the message lists the known ones).
        ConfigError: for a bad split, image size or option.
        DatasetError: for a missing or malformed dataset folder.

    Example:
        >>> ds = build_dataset("synthetic", "val", image_size=(64, 128), length=4)
        >>> image, mask = ds[0]
        >>> tuple(image.shape), tuple(mask.shape), ds.num_classes
        ((3, 64, 128), (64, 128), 6)
    """
    cls = DATASETS.get(name)
    return cls(split=split, image_size=image_size, root=root, seed=seed, augment=augment, **kw)
