"""Shared machinery of the folder datasets: layout checks, image and mask reading.

A folder dataset resolves its root against the expected layout once, builds a
sorted list of `(image path, mask path)` pairs at construction (so a missing
mask is reported before training starts, not at step 10 000) and reads and
label-maps one pair per `__getitem__`. Every failure raises `DatasetError`
naming the offending path and the layout the dataset expects.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from qanas.data.base import SegmentationDataset
from qanas.errors import DatasetError


def resolve_root(root: str | Path | None, dataset: str, required: Sequence[str],
                 layout: str, candidates: Sequence[str] = ("",)) -> Path:
    """Finds the dataset folder under `root` that holds all `required` subfolders.

    Args:
        root: the folder the user gave (None raises).
        dataset: the dataset name, for messages.
        required: subfolders that must exist, relative to the resolved root.
        layout: a printable tree of the expected layout, for messages.
        candidates: subpaths of `root` to try in order, e.g. ("", "VOC2012").

    Returns:
        The first `root / candidate` holding every required subfolder.

    Raises:
        DatasetError: if `root` is None, missing, or no candidate has the layout.
    """
    if root is None:
        raise DatasetError(f"dataset {dataset!r} needs a root folder (--data-root / root=...) "
                           f"with this layout:\n{layout}")
    base = Path(root).expanduser()
    if not base.is_dir():
        raise DatasetError(f"{dataset} root {str(base)!r} is not a directory; expected a folder "
                           f"with this layout:\n{layout}")
    for sub in candidates:
        path = base / sub if sub else base
        if all((path / r).is_dir() for r in required):
            return path
    missing = [r for r in required if not (base / r).is_dir()]
    raise DatasetError(
        f"unknown {dataset} layout at {str(base)!r}: missing {', '.join(missing)}; "
        f"expected this layout:\n{layout}"
    )


def read_image(path: Path) -> np.ndarray:
    """Reads an image file as uint8 RGB `[H, W, 3]`.

    Raises:
        DatasetError: naming `path` if it is missing or cannot be decoded.
    """
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except FileNotFoundError:
        raise DatasetError(f"image file {str(path)!r} is missing") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(f"cannot read image {str(path)!r} ({exc}); the file is corrupt or not "
                           f"an image: re-extract it, or remove it from the split") from None


def read_label_png(path: Path) -> Image.Image:
    """Opens a label PNG fully decoded, keeping its mode (P, L, I or RGB).

    Raises:
        DatasetError: naming `path` if it is missing or cannot be decoded.
    """
    try:
        with Image.open(path) as img:
            img.load()
            return img.copy()
    except FileNotFoundError:
        raise DatasetError(f"mask file {str(path)!r} is missing") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(f"cannot read mask {str(path)!r} ({exc}); the file is corrupt or not "
                           f"a PNG: re-extract it, or remove it from the split") from None


def label_indices(path: Path) -> np.ndarray:
    """Reads a single-channel label PNG (mode P, L or I) as an integer array of ids.

    Palette PNGs are read as palette indices, never converted to colours.

    Raises:
        DatasetError: if the PNG is not single-channel.
    """
    img = read_label_png(path)
    if img.mode not in ("P", "L", "I", "I;16"):
        raise DatasetError(f"mask {str(path)!r} has mode {img.mode}; expected a single-channel "
                           f"label PNG (mode P, L or I) holding one class id per pixel")
    return np.asarray(img)


def map_labels(ids: np.ndarray, lut: np.ndarray, path: Path) -> np.ndarray:
    """Maps raw label ids through a 256-entry lookup table to uint8 train ids.

    Raises:
        DatasetError: naming `path` if an id is outside 0..255.
    """
    if ids.size and (ids.min() < 0 or ids.max() > 255):
        raise DatasetError(f"mask {str(path)!r} holds label ids {int(ids.min())}..{int(ids.max())}"
                           f"; expected ids in 0..255")
    return lut[ids.astype(np.intp, copy=False)]


class FolderDataset(SegmentationDataset):
    """A dataset backed by a list of `(image, mask)` file pairs.

    Subclasses build `self.pairs` in `__init__` (after `super().__init__`) and
    implement `_read_mask(path) -> uint8 train ids`.
    """

    layout: str = ""

    def __init__(self, split: str, image_size: Sequence[int], seed: int = 0,
                 augment: bool = False):
        super().__init__(split, image_size, seed, augment)
        self.root: Path | None = None
        self.pairs: list[tuple[Path, Path]] = []

    def _check_pairs(self, pairs: list[tuple[Path, Path]], where: Path) -> list[tuple[Path, Path]]:
        """Checks that the split is non-empty and every mask file exists."""
        if not pairs:
            raise DatasetError(f"no {self.split} images found under {str(where)!r}; expected "
                               f"this {self.name} layout:\n{self.layout}")
        for image, mask in pairs:
            if not mask.is_file():
                raise DatasetError(f"mask {str(mask)!r} for image {str(image)!r} is missing; "
                                   f"expected this {self.name} layout:\n{self.layout}")
        return pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def _read_mask(self, path: Path) -> np.ndarray:
        """Reads the mask at `path` as uint8 train ids (255 = ignore)."""
        raise NotImplementedError(f"{type(self).__name__} must define _read_mask(path)")

    def _load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        image_path, mask_path = self.pairs[index]
        image = read_image(image_path)
        mask = self._read_mask(mask_path)
        if mask.shape != image.shape[:2]:
            raise DatasetError(f"mask {str(mask_path)!r} is {mask.shape[1]}x{mask.shape[0]} but "
                               f"image {str(image_path)!r} is {image.shape[1]}x{image.shape[0]}; "
                               f"a mask must have its image's size")
        return image, mask

    def to_dict(self) -> dict:
        """A JSON-serialisable description for run metadata."""
        return {**super().to_dict(), "root": str(self.root)}
