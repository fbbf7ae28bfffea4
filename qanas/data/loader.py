"""A seeded DataLoader whose shuffling and augmentation are reproducible.

`SeededSampler` draws, from its own `torch.Generator`, the order of an epoch
and one seed per sample, and yields `(index, sample_seed)` keys; datasets of
`qanas.data` seed the sample's augmentation from that key. Every epoch thus
sees a new order and new augmentations, the whole sequence is fixed by one
seed, and it does not depend on `num_workers` or on global random state. The loader
draws its workers' base seed from a second generator of the same seed
(`worker_seed_generator`), so iterating it never touches torch's global RNG.
"""

from __future__ import annotations

from collections.abc import Iterator, Sized

import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from qanas.errors import ConfigError

_SEED_BOUND = 2**62


class SeededSampler(Sampler[tuple[int, int]]):
    """Yields `(index, sample_seed)` for each sample of an epoch.

    Args:
        data_source: the dataset (only its length is used).
        shuffle: random order per epoch instead of `0..n-1`.
        generator: the generator consumed by each epoch's draws.
    """

    def __init__(self, data_source: Sized, shuffle: bool, generator: torch.Generator):
        self.n = len(data_source)
        self.shuffle = shuffle
        self.generator = generator

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Iterator[tuple[int, int]]:
        if self.shuffle:
            order = torch.randperm(self.n, generator=self.generator)
        else:
            order = torch.arange(self.n)
        seeds = torch.randint(0, _SEED_BOUND, (self.n,), generator=self.generator,
                              dtype=torch.int64)
        yield from zip(order.tolist(), seeds.tolist(), strict=True)


def make_loader(dataset: Dataset, batch_size: int, shuffle: bool, seed: int,
                num_workers: int = 0, drop_last: bool = False) -> DataLoader:
    """Builds a DataLoader with seeded order and per-epoch augmentation seeds.

    Args:
        dataset: a `SegmentationDataset` (or any dataset accepting `(index, seed)` keys).
        batch_size: samples per batch.
        shuffle: reshuffle every epoch.
        seed: seeds the order and the augmentation draws of all epochs.
        num_workers: loader worker processes (results do not depend on it).
        drop_last: drop the last incomplete batch (useful with BatchNorm in training).

    Returns:
        A `torch.utils.data.DataLoader` yielding `(images [B, 3, H, W], masks [B, H, W])`.

    Example:
        >>> from qanas.data import build_dataset
        >>> ds = build_dataset("synthetic", "train", (32, 64), length=8, augment=True)
        >>> images, masks = next(iter(make_loader(ds, batch_size=4, shuffle=True, seed=0)))
        >>> tuple(images.shape), tuple(masks.shape)
        ((4, 3, 32, 64), (4, 32, 64))
    """
    if int(batch_size) <= 0:
        raise ConfigError(f"batch_size must be a positive integer; got {batch_size!r}")
    if int(num_workers) < 0:
        raise ConfigError(f"num_workers must be >= 0; got {num_workers!r}")
    generator = torch.Generator().manual_seed(int(seed))
    sampler = SeededSampler(dataset, shuffle, generator)
    return DataLoader(dataset, batch_size=int(batch_size), sampler=sampler,
                      num_workers=int(num_workers), drop_last=drop_last,
                      persistent_workers=False, generator=worker_seed_generator(seed))


def worker_seed_generator(seed: int) -> torch.Generator:
    """The generator a seeded loader draws its workers' base seed from (one per iteration).

    Without one, a DataLoader draws that seed from torch's global RNG each time it is
    iterated, even with no workers. It is not the sampler's generator: drawing from that
    one would change the order.
    """
    return torch.Generator().manual_seed(int(seed))
