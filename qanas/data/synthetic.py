"""`synthetic`: seeded scenes of textured shapes, generated on the fly.

The embedded default dataset: no files, no download, any image size. Each
scene is fully determined by `(seed, split, index)`: a textured background and
2-6 objects of five shape classes, drawn in order so that later objects occlude
earlier ones. Each class has its own shape and texture (speckle, checkerboard,
stripes, flat, dots) and a preferred colour, but object colours are jittered
and backgrounds take any colour, so colour alone does not separate the classes:
a network has to use texture and shape. Geometry and texture periods are
fractions of `min(H, W)`, so one index gives the same scene at every size.

Generation is vectorised numpy over each object's bounding box; a 64x128
sample takes about a millisecond.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from qanas.data.base import DATASETS, SegmentationDataset
from qanas.errors import ConfigError

CLASS_NAMES = ("background", "disc", "square", "triangle", "ring", "blob")

# Preferred object colour per class (RGB in [0, 1]); objects jitter around it.
_CLASS_COLOUR = np.array([
    [0.0, 0.0, 0.0],  # background: drawn uniformly instead
    [0.80, 0.35, 0.30],
    [0.35, 0.70, 0.35],
    [0.30, 0.40, 0.80],
    [0.80, 0.75, 0.30],
    [0.65, 0.35, 0.75],
], dtype=np.float32)
_COLOUR_JITTER = 0.18
_SPLIT_CODE = {"train": 0, "val": 1}
_DEFAULT_LENGTH = {"train": 512, "val": 128}


@DATASETS.decorator("synthetic")
class SyntheticSegmentation(SegmentationDataset):
    """Deterministic textured-shape scenes; see the module docstring.

    Args:
        split: "train" or "val" (disjoint random streams).
        image_size: output `(H, W)`; scenes are generated at this size.
        root: must be None (nothing is read from disk).
        seed: selects the family of scenes and the augmentation draws.
        augment: random scale-crop and horizontal flip.
        length: number of scenes (default 512 for train, 128 for val).
        objects: inclusive `(min, max)` number of objects per scene.
    """

    name = "synthetic"
    class_names = CLASS_NAMES

    def __init__(self, split: str = "train", image_size: Sequence[int] = (64, 128),
                 root: str | None = None, seed: int = 0, augment: bool = False,
                 length: int | None = None, objects: tuple[int, int] = (3, 7)):
        if root is not None:
            raise ConfigError(f"the synthetic dataset is generated, it reads no files; "
                              f"drop root={root!r} (or pick a folder dataset)")
        super().__init__(split, image_size, seed, augment)
        self.length = _DEFAULT_LENGTH[split] if length is None else int(length)
        if self.length <= 0:
            raise ConfigError(f"synthetic length must be a positive integer; got {length!r}")
        lo, hi = int(objects[0]), int(objects[1])
        if not 0 <= lo <= hi:
            raise ConfigError(f"objects must be (min, max) with 0 <= min <= max; got {objects!r}")
        self.objects = (lo, hi)

    def __len__(self) -> int:
        return self.length

    def _load(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        return generate_scene(self.image_size, self.seed, _SPLIT_CODE[self.split], index,
                              self.objects)

    def to_dict(self) -> dict:
        """A JSON-serialisable description for run metadata."""
        return {**super().to_dict(), "objects": list(self.objects)}


def generate_scene(image_size: Sequence[int], seed: int, split_code: int, index: int,
                   objects: tuple[int, int] = (3, 7)) -> tuple[np.ndarray, np.ndarray]:
    """Generates one synthetic scene.

    Args:
        image_size: `(H, W)`.
        seed: dataset seed.
        split_code: 0 for train, 1 for val (any integer gives its own stream).
        index: scene index.
        objects: inclusive `(min, max)` number of objects.

    Returns:
        `(image uint8 [H, W, 3], mask uint8 [H, W])` with mask values in `0..5`.
    """
    h, w = int(image_size[0]), int(image_size[1])
    rng = np.random.default_rng([int(seed), int(split_code), int(index)])
    unit = float(min(h, w))
    image = _background(rng, h, w, unit)
    mask = np.zeros((h, w), dtype=np.uint8)
    for _ in range(int(rng.integers(objects[0], objects[1] + 1))):
        cls = int(rng.integers(1, len(CLASS_NAMES)))
        _draw_object(rng, image, mask, cls, unit)
    # Global photometric jitter and sensor noise, then quantize like a camera.
    contrast = rng.uniform(0.75, 1.25)
    brightness = rng.uniform(-0.1, 0.1)
    image = (image - 0.5) * contrast + 0.5 + brightness
    image += rng.standard_normal((h, w, 3), dtype=np.float32) * 0.03
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8), mask


def _background(rng: np.random.Generator, h: int, w: int, unit: float) -> np.ndarray:
    """A smooth random-colour field: base colour plus two slow plane waves."""
    y = np.arange(h, dtype=np.float32)[:, None]
    x = np.arange(w, dtype=np.float32)[None, :]
    image = np.empty((h, w, 3), dtype=np.float32)
    image[:] = rng.uniform(0.1, 0.9, size=3).astype(np.float32)
    for _ in range(2):
        angle = rng.uniform(0, 2 * np.pi)
        period = rng.uniform(0.6, 1.6) * unit
        phase = rng.uniform(0, 2 * np.pi)
        wave = np.sin((x * np.cos(angle) + y * np.sin(angle)) * (2 * np.pi / period) + phase)
        image += wave[..., None] * rng.uniform(-0.15, 0.15, size=3).astype(np.float32)
    return image


def _draw_object(rng: np.random.Generator, image: np.ndarray, mask: np.ndarray, cls: int,
                 unit: float) -> None:
    """Draws one object of class `cls` into `image` and `mask` in place."""
    h, w = mask.shape
    r = rng.uniform(0.12, 0.34) * unit
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    theta = rng.uniform(0, 2 * np.pi)
    aspect = rng.uniform(1.2, 1.8)  # only the blob uses it; drawn always to keep streams aligned
    colour = np.clip(_CLASS_COLOUR[cls] + rng.normal(0, _COLOUR_JITTER, 3), 0.05, 0.95)
    contrast = rng.uniform(0.12, 0.25) * rng.choice([-1.0, 1.0], size=3)
    period = rng.uniform(0.09, 0.15) * unit
    extent = r * 1.8  # bounds every shape below
    y0, y1 = max(0, int(cy - extent)), min(h, int(cy + extent) + 1)
    x0, x1 = max(0, int(cx - extent)), min(w, int(cx + extent) + 1)
    if y0 >= y1 or x0 >= x1:
        return
    dy = np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5 - cy
    dx = np.arange(x0, x1, dtype=np.float32)[None, :] + 0.5 - cx
    c, s = np.float32(np.cos(theta)), np.float32(np.sin(theta))
    u, v = dx * c + dy * s, dy * c - dx * s

    if cls == 1:  # disc, speckled
        inside = dx * dx + dy * dy <= r * r
        tex = rng.standard_normal(inside.shape, dtype=np.float32) * 0.8
    elif cls == 2:  # rotated square, checkerboard
        inside = np.maximum(np.abs(u), np.abs(v)) <= r * 0.85
        tex = np.sign(np.sin(u * (np.pi / period)) * np.sin(v * (np.pi / period)))
    elif cls == 3:  # equilateral triangle (circumradius 1.5 r), stripes
        inside = np.ones(u.shape, dtype=bool)
        for k in range(3):
            a = theta + k * 2 * np.pi / 3
            inside &= dx * np.cos(a) + dy * np.sin(a) <= 0.75 * r
        tex = np.sin(u * (2 * np.pi / period))
    elif cls == 4:  # ring, flat with faint noise
        d2 = dx * dx + dy * dy
        inside = (d2 <= r * r) & (d2 >= (0.5 * r) ** 2)
        tex = rng.standard_normal(inside.shape, dtype=np.float32) * 0.15
    else:  # elongated blob (ellipse), dots
        inside = (u / (r * aspect)) ** 2 + (v * aspect / r) ** 2 <= 1.0
        dots = np.sin(u * (2 * np.pi / period)) * np.sin(v * (2 * np.pi / period)) > 0.4
        tex = dots * 2.0 - 1.0
    inside = np.broadcast_to(inside, (y1 - y0, x1 - x0))
    tex = np.broadcast_to(tex, inside.shape).astype(np.float32, copy=False)
    pixels = colour.astype(np.float32) + tex[..., None] * contrast.astype(np.float32)
    region = image[y0:y1, x0:x1]
    region[inside] = pixels[inside]
    mask[y0:y1, x0:x1][inside] = cls
