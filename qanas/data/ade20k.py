"""`ade20k`: the ADE20K SceneParsing benchmark (ADEChallengeData2016), 150 classes.

Annotation value 0 ("other objects") is ignored (255); values 1..150 become
train ids 0..149. Names are the first synonym of each `objectInfo150` entry.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from qanas.data.base import DATASETS
from qanas.data.folder import FolderDataset, label_indices, map_labels, resolve_root
from qanas.errors import DatasetError

CLASS_NAMES = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass",
    "cabinet", "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain",
    "chair", "car", "water", "painting", "sofa", "shelf", "house", "sea", "mirror", "rug",
    "field", "armchair", "seat", "fence", "desk", "rock", "wardrobe", "lamp", "bathtub",
    "railing", "cushion", "base", "box", "column", "signboard", "chest of drawers", "counter",
    "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand", "path", "stairs",
    "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge",
    "bookcase", "blind", "coffee table", "toilet", "flower", "book", "hill", "bench",
    "countertop", "stove", "palm", "kitchen island", "computer", "swivel chair", "boat", "bar",
    "arcade machine", "hovel", "bus", "towel", "light", "truck", "tower", "chandelier",
    "awning", "streetlight", "booth", "television receiver", "airplane", "dirt track",
    "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle", "buffet",
    "poster", "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer",
    "plaything", "swimming pool", "stool", "barrel", "basket", "waterfall", "tent", "bag",
    "minibike", "cradle", "oven", "ball", "food", "step", "tank", "trade name", "microwave",
    "pot", "animal", "bicycle", "lake", "dishwasher", "screen", "blanket", "sculpture", "hood",
    "sconce", "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen", "plate",
    "monitor", "bulletin board", "shower", "radiator", "glass", "clock", "flag",
)
assert len(CLASS_NAMES) == 150

LAYOUT = """\
  ROOT/images/{training,validation}/{name}.jpg
  ROOT/annotations/{training,validation}/{name}.png   (0 = other, 1..150 = classes)
  (ROOT may also be the folder holding ADEChallengeData2016/)"""

_SUBDIR = {"train": "training", "val": "validation"}
_EXTENSIONS = (".jpg", ".jpeg", ".png")


def _lut() -> np.ndarray:
    lut = np.full(256, 255, dtype=np.uint8)
    lut[1:151] = np.arange(150, dtype=np.uint8)
    return lut


@DATASETS.decorator("ade20k")
class ADE20K(FolderDataset):
    """ADE20K SceneParsing images with their 150-class annotations.

    Args:
        split: "train" (`training/`) or "val" (`validation/`).
        image_size: output `(H, W)`.
        root: the `ADEChallengeData2016` folder (or the folder holding it).
        seed: seeds the augmentation draws.
        augment: random scale-crop and horizontal flip.
    """

    name = "ade20k"
    class_names = CLASS_NAMES
    layout = LAYOUT
    _LUT = _lut()

    def __init__(self, split: str = "train", image_size: Sequence[int] = (64, 128),
                 root: str | Path | None = None, seed: int = 0, augment: bool = False):
        super().__init__(split, image_size, seed, augment)
        sub = _SUBDIR[split]
        self.root = resolve_root(root, self.name, (f"images/{sub}", f"annotations/{sub}"),
                                 LAYOUT, candidates=("", "ADEChallengeData2016"))
        image_dir = self.root / "images" / sub
        images = sorted(p for p in image_dir.iterdir() if p.suffix.lower() in _EXTENSIONS)
        pairs = [(p, self.root / "annotations" / sub / f"{p.stem}.png") for p in images]
        self.pairs = self._check_pairs(pairs, image_dir)

    def _read_mask(self, path: Path) -> np.ndarray:
        ids = label_indices(path)
        if ids.size and int(ids.max()) > 150:
            raise DatasetError(f"mask {str(path)!r} holds value {int(ids.max())}; ADE20K "
                               f"SceneParsing annotations hold 0 (other) and 1..150")
        return map_labels(ids, self._LUT, path)
