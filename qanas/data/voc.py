"""`voc`: Pascal VOC 2012 segmentation (21 classes, 255 = object border, ignored).

Masks are the palette PNGs of `SegmentationClass/`, read as palette indices.
RGB masks painted with the VOC colour map (as some converters write them) are
mapped back to indices; colours outside the map become 255.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from qanas.data.base import DATASETS
from qanas.data.folder import FolderDataset, read_label_png, resolve_root
from qanas.data.palette import color_map
from qanas.errors import DatasetError

CLASS_NAMES = (
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair",
    "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa",
    "train", "tvmonitor",
)

LAYOUT = """\
  ROOT/JPEGImages/{name}.jpg
  ROOT/SegmentationClass/{name}.png        (palette PNG, 0..20, 255 = border)
  ROOT/ImageSets/Segmentation/{split}.txt  (one {name} per line)
  (ROOT may also be VOCdevkit/ or the folder holding VOCdevkit/)"""

_REQUIRED = ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation")


@DATASETS.decorator("voc")
class VOCSegmentation(FolderDataset):
    """Pascal VOC 2012 `SegmentationClass` masks over `JPEGImages`.

    Args:
        split: "train", "val" or "trainval" (a list in `ImageSets/Segmentation/`).
        image_size: output `(H, W)`.
        root: the `VOC2012` folder (or `VOCdevkit/`, or the folder holding it).
        seed: seeds the augmentation draws.
        augment: random scale-crop and horizontal flip.
    """

    name = "voc"
    class_names = CLASS_NAMES
    splits = ("train", "val", "trainval")
    layout = LAYOUT

    def __init__(self, split: str = "train", image_size: Sequence[int] = (64, 128),
                 root: str | Path | None = None, seed: int = 0, augment: bool = False):
        super().__init__(split, image_size, seed, augment)
        self.root = resolve_root(root, self.name, _REQUIRED, LAYOUT,
                                 candidates=("", "VOC2012", "VOCdevkit/VOC2012"))
        list_file = self.root / "ImageSets" / "Segmentation" / f"{split}.txt"
        if not list_file.is_file():
            raise DatasetError(f"split list {str(list_file)!r} is missing; expected this "
                               f"voc layout:\n{LAYOUT}")
        names = [line.split()[0] for line in list_file.read_text().splitlines() if line.strip()]
        pairs = []
        for name in names:
            pairs.append((self.root / "JPEGImages" / f"{name}.jpg",
                          self.root / "SegmentationClass" / f"{name}.png"))
        for image, _ in pairs:
            if not image.is_file():
                raise DatasetError(f"image {str(image)!r} listed in {str(list_file)!r} is "
                                   f"missing; expected this voc layout:\n{LAYOUT}")
        self.pairs = self._check_pairs(pairs, list_file)

    def _read_mask(self, path: Path) -> np.ndarray:
        img = read_label_png(path)
        if img.mode in ("P", "L"):
            ids = np.asarray(img)
        elif img.mode in ("RGB", "RGBA"):
            ids = _rgb_to_index(np.asarray(img.convert("RGB")))
        else:
            raise DatasetError(f"mask {str(path)!r} has mode {img.mode}; expected a palette "
                               f"(P) PNG as in SegmentationClass/")
        bad = (ids > 20) & (ids != 255)
        if bad.any():
            raise DatasetError(f"mask {str(path)!r} holds class ids {np.unique(ids[bad]).tolist()}"
                               f"; VOC masks hold 0..20 and 255 (border)")
        return ids.astype(np.uint8, copy=False)


def _rgb_to_index(rgb: np.ndarray) -> np.ndarray:
    """Maps VOC-palette colours to ids 0..20 and 255; any other colour becomes 255."""
    cmap = color_map().astype(np.int64)
    keys = (cmap[:, 0] << 16) | (cmap[:, 1] << 8) | cmap[:, 2]
    lut = {int(keys[i]): i for i in (*range(len(CLASS_NAMES)), 255)}
    flat = (rgb[..., 0].astype(np.int64) << 16) | (rgb[..., 1].astype(np.int64) << 8) | rgb[..., 2]
    out = np.full(flat.shape, 255, dtype=np.uint8)
    for key, index in lut.items():
        out[flat == key] = index
    return out
