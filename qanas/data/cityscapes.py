"""`cityscapes`: the Cityscapes fine annotations, mapped to the 19 train ids.

Label ids follow cityscapesScripts' `labels.py`: the 19 evaluated classes get
train ids 0..18 and every other id (void, rectification border, parking,
guard rail, ...) becomes 255 and is ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from qanas.data.base import DATASETS
from qanas.data.folder import FolderDataset, label_indices, map_labels, resolve_root

CLASS_NAMES = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign",
    "vegetation", "terrain", "sky", "person", "rider", "car", "truck", "bus", "train",
    "motorcycle", "bicycle",
)

# labelId -> trainId for the 19 evaluated classes (cityscapesScripts labels.py).
LABEL_TO_TRAIN_ID = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11,
    25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}


def _lut() -> np.ndarray:
    lut = np.full(256, 255, dtype=np.uint8)
    for label_id, train_id in LABEL_TO_TRAIN_ID.items():
        lut[label_id] = train_id
    return lut


LAYOUT = """\
  ROOT/leftImg8bit/{split}/{city}/{name}_leftImg8bit.png
  ROOT/gtFine/{split}/{city}/{name}_gtFine_labelIds.png"""


@DATASETS.decorator("cityscapes")
class Cityscapes(FolderDataset):
    """Cityscapes `leftImg8bit` images with `gtFine` label-id masks.

    Args:
        split: "train", "val" or "test".
        image_size: output `(H, W)` (Cityscapes is 1024x2048, i.e. 1:2).
        root: the folder holding `leftImg8bit/` and `gtFine/`.
        seed: seeds the augmentation draws.
        augment: random scale-crop and horizontal flip.
    """

    name = "cityscapes"
    class_names = CLASS_NAMES
    splits = ("train", "val", "test")
    layout = LAYOUT
    _LUT = _lut()

    def __init__(self, split: str = "train", image_size: Sequence[int] = (64, 128),
                 root: str | Path | None = None, seed: int = 0, augment: bool = False):
        super().__init__(split, image_size, seed, augment)
        self.root = resolve_root(root, self.name, ("leftImg8bit", "gtFine"), LAYOUT)
        image_dir = self.root / "leftImg8bit" / split
        suffix = "_leftImg8bit.png"
        pairs = []
        for image in sorted(image_dir.glob(f"*/*{suffix}")):
            stem = image.name[: -len(suffix)]
            mask = self.root / "gtFine" / split / image.parent.name / f"{stem}_gtFine_labelIds.png"
            pairs.append((image, mask))
        self.pairs = self._check_pairs(pairs, image_dir)

    def _read_mask(self, path: Path) -> np.ndarray:
        return map_labels(label_indices(path), self._LUT, path)
