"""Joint image/mask transforms: resize, random scale-crop, horizontal flip, normalize.

Every transform is a callable `(image, mask, rng) -> (image, mask)` on torch
tensors, `image` float32 `[3, H, W]` and `mask` int64 `[H, W]`, with `rng` an
explicit `np.random.Generator` (deterministic transforms ignore it). No global
random state is touched.

Images are resized bilinearly (antialiased when shrinking) and masks with
"nearest-exact", whose sampling grid is the pixel-centre grid of bilinear
`align_corners=False`: image and mask stay aligned to within half a pixel
at any scale factor, which plain "nearest" does not guarantee.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from qanas.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Pair = tuple[torch.Tensor, torch.Tensor]


def to_tensor(image: np.ndarray, mask: np.ndarray) -> Pair:
    """Converts a uint8 `[H, W, 3]` image and `[H, W]` mask to tensors.

    Args:
        image: uint8 RGB image, `[H, W, 3]`.
        mask: integer train-id mask, `[H, W]`.

    Returns:
        `(image float32 [3, H, W] in [0, 1], mask int64 [H, W])`.
    """
    if image.ndim != 3 or image.shape[2] != 3 or mask.shape != image.shape[:2]:
        raise ValueError(f"expected an [H, W, 3] image and an [H, W] mask of the same size; "
                         f"got image {image.shape} and mask {mask.shape}")
    img = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float().div_(255.0)
    return img, torch.from_numpy(mask.astype(np.int64, copy=False))


def resize(image: torch.Tensor, mask: torch.Tensor, size: Sequence[int]) -> Pair:
    """Resizes image (bilinear, antialiased) and mask (nearest-exact) to `size`.

    Args:
        image: float `[3, H, W]`.
        mask: int64 `[H, W]`.
        size: output `(H, W)`.

    Returns:
        The resized `(image, mask)`; the inputs themselves when already at `size`.
    """
    size = (int(size[0]), int(size[1]))
    if tuple(image.shape[-2:]) == size:
        return image, mask
    shrinking = size[0] < image.shape[-2] or size[1] < image.shape[-1]
    image = F.interpolate(image[None], size=size, mode="bilinear", align_corners=False,
                          antialias=shrinking)[0]
    # Interpolate as float: integer ids up to 255 are exact in float32.
    mask = F.interpolate(mask[None, None].float(), size=size, mode="nearest-exact")[0, 0]
    return image, mask.long()


class Resize:
    """Resizes every sample to a fixed `(H, W)`."""

    def __init__(self, size: Sequence[int]):
        self.size = (int(size[0]), int(size[1]))

    def __call__(self, image: torch.Tensor, mask: torch.Tensor, rng: np.random.Generator) -> Pair:
        return resize(image, mask, self.size)


class RandomScaleCrop:
    """Resizes to `size` times a random scale, then crops (or pads) back to `size`.

    Scales above 1 zoom in and take a random crop; scales below 1 zoom out and
    pad with zeros (image) and `ignore_index` (mask) at a random offset, so the
    padding never counts in the loss.
    """

    def __init__(self, size: Sequence[int], scale: tuple[float, float] = (0.5, 2.0),
                 ignore_index: int = 255):
        lo, hi = float(scale[0]), float(scale[1])
        if not 0 < lo <= hi:
            raise ConfigError(f"scale range must satisfy 0 < min <= max; got {scale!r}")
        self.size = (int(size[0]), int(size[1]))
        self.scale = (lo, hi)
        self.ignore_index = ignore_index

    def __call__(self, image: torch.Tensor, mask: torch.Tensor, rng: np.random.Generator) -> Pair:
        h, w = self.size
        s = float(rng.uniform(*self.scale))
        sh, sw = max(1, round(h * s)), max(1, round(w * s))
        image, mask = resize(image, mask, (sh, sw))
        pad_h, pad_w = max(0, h - sh), max(0, w - sw)
        if pad_h or pad_w:
            top, left = int(rng.integers(0, pad_h + 1)), int(rng.integers(0, pad_w + 1))
            pads = (left, pad_w - left, top, pad_h - top)
            image = F.pad(image, pads, value=0.0)
            mask = F.pad(mask, pads, value=self.ignore_index)
        y = int(rng.integers(0, image.shape[-2] - h + 1))
        x = int(rng.integers(0, image.shape[-1] - w + 1))
        return image[:, y:y + h, x:x + w], mask[y:y + h, x:x + w]


class RandomHorizontalFlip:
    """Mirrors image and mask left-right with probability `p`."""

    def __init__(self, p: float = 0.5):
        if not 0.0 <= p <= 1.0:
            raise ConfigError(f"flip probability must be in [0, 1]; got {p!r}")
        self.p = float(p)

    def __call__(self, image: torch.Tensor, mask: torch.Tensor, rng: np.random.Generator) -> Pair:
        if rng.random() < self.p:
            return image.flip(-1), mask.flip(-1)
        return image, mask


class Normalize:
    """Subtracts `mean` and divides by `std` per channel (image only)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        if len(mean) != 3 or len(std) != 3 or min(std) <= 0:
            raise ConfigError(f"mean and std need 3 values with std > 0; got {mean!r}, {std!r}")
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)

    def __call__(self, image: torch.Tensor, mask: torch.Tensor, rng: np.random.Generator) -> Pair:
        return (image - self.mean) / self.std, mask


class Compose:
    """Applies transforms in order, threading the same generator through them."""

    def __init__(self, transforms: Sequence):
        self.transforms = list(transforms)

    def __call__(self, image: torch.Tensor, mask: torch.Tensor, rng: np.random.Generator) -> Pair:
        for t in self.transforms:
            image, mask = t(image, mask, rng)
        return image.contiguous(), mask.contiguous()

    def __repr__(self) -> str:
        return f"Compose({[type(t).__name__ for t in self.transforms]})"


def build_transform(image_size: Sequence[int], augment: bool,
                    mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD,
                    ignore_index: int = 255, scale: tuple[float, float] = (0.5, 2.0)) -> Compose:
    """The standard pipeline: evaluation resizes; training scale-crops and flips.

    Args:
        image_size: output `(H, W)`.
        augment: add random scale-crop and horizontal flip instead of a plain resize.
        mean, std: normalization constants for images in [0, 1].
        ignore_index: mask value used for padding.
        scale: random scale range of the scale-crop.

    Returns:
        A `Compose` to call as `t(image, mask, rng)`.

    Example:
        >>> t = build_transform((32, 64), augment=True)
        >>> img, msk = t(torch.zeros(3, 40, 80), torch.zeros(40, 80, dtype=torch.long),
        ...              np.random.default_rng(0))
        >>> tuple(img.shape), tuple(msk.shape)
        ((3, 32, 64), (32, 64))
    """
    if augment:
        steps = [RandomScaleCrop(image_size, scale, ignore_index), RandomHorizontalFlip(0.5)]
    else:
        steps = [Resize(image_size)]
    return Compose([*steps, Normalize(mean, std)])


def denormalize(image: torch.Tensor, mean: Sequence[float] = IMAGENET_MEAN,
                std: Sequence[float] = IMAGENET_STD) -> np.ndarray:
    """Inverts `Normalize` for display.

    Args:
        image: normalized float `[3, H, W]`.
        mean, std: the constants it was normalized with.

    Returns:
        uint8 `[H, W, 3]` RGB image.
    """
    m = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
    rgb = (image.detach().float().cpu() * s + m).clamp(0, 1).mul(255).round()
    return rgb.to(torch.uint8).permute(1, 2, 0).numpy()
