"""Data-parallel supernet training: one shard of every global batch per rank, summed gradients.

`TrainConfig.batch_size` is the *global* batch. Every rank draws the same global
order from the seeded loader of `qanas.data.make_loader` (same seed, same
`(index, sample_seed)` keys) and keeps its contiguous slice of each global
batch: rank r of W gets samples ``r*B/W .. (r+1)*B/W - 1`` of every batch of B.
The shards are disjoint, together they are exactly the single-process batch,
and augmentation seeds travel with the keys, so an image is augmented the same
way whichever rank loads it.

Gradients are averaged by one explicit all-reduce after the m FairNAS paths of a
step have been accumulated (`all_reduce_gradients`), not by
`DistributedDataParallel`: DDP reduces in backward hooks, i.e. once per path
(m all-reduces per step, or `no_sync` bookkeeping), and with
``find_unused_parameters=True`` it also walks the autograd graph each time to find
the parameters a path skipped. Because every rank runs the same paths, the set of
parameters with a gradient is the same on every rank, so one flat all-reduce per
step is both cheaper and exact: with each rank's loss normalised by the global
number of labelled pixels, the summed gradient is the gradient of the global
batch's loss.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from itertools import islice

import torch
from torch.utils.data import DataLoader, Sampler

from qanas.distributed import DistContext
from qanas.errors import ConfigError


class GlobalBatchShard(Sampler[tuple[int, int]]):
    """Yields this rank's keys of every global batch drawn by `base`.

    Args:
        base: a sampler of `(index, sample_seed)` keys (`qanas.data.SeededSampler`),
            identical on every rank.
        global_batch: B, the samples of one optimizer step over all ranks.
        rank, world_size: this rank's place; B must be a multiple of `world_size`.
        drop_last: drop a last incomplete global batch (always on for training).
    """

    def __init__(self, base: Sampler, global_batch: int, rank: int, world_size: int,
                 drop_last: bool):
        local = check_global_batch(global_batch, world_size)
        self.base, self.global_batch, self.local = base, int(global_batch), local
        self.rank, self.world_size, self.drop_last = int(rank), int(world_size), drop_last

    def _global_batches(self) -> int:
        n = len(self.base)
        return n // self.global_batch if self.drop_last else -(-n // self.global_batch)

    def __len__(self) -> int:
        n, full = len(self.base), len(self.base) // self.global_batch
        if self.drop_last or n % self.global_batch == 0:
            return full * self.local
        rest = n % self.global_batch
        return full * self.local + max(0, min(self.local, rest - self.rank * self.local))

    def __iter__(self) -> Iterator[tuple[int, int]]:
        keys = list(iter(self.base))
        lo, hi = self.rank * self.local, (self.rank + 1) * self.local
        for b in range(self._global_batches()):
            yield from keys[b * self.global_batch:(b + 1) * self.global_batch][lo:hi]


def check_global_batch(global_batch: int, world_size: int) -> int:
    """The per-rank batch B / W; raises `ConfigError` unless W divides B."""
    if int(global_batch) % int(world_size):
        multiple = -(-int(global_batch) // int(world_size)) * int(world_size)
        raise ConfigError(
            f"--batch-size {global_batch} is the global batch and must be a multiple of the "
            f"{world_size} processes; pass --batch-size {multiple}, or launch a number of "
            f"processes that divides {global_batch}"
        )
    return int(global_batch) // int(world_size)


class SkipKeys(Sampler[tuple[int, int]]):
    """The keys of `base` after its first `skip` (a resumed epoch's remaining samples).

    `base` still draws the epoch's whole order and every sample seed from its
    generator, so the keys that follow are exactly those of the uninterrupted epoch,
    and the skipped samples are never loaded.
    """

    def __init__(self, base: Sampler, skip: int):
        self.base, self.skip = base, int(skip)

    def __len__(self) -> int:
        return max(0, len(self.base) - self.skip)

    def __iter__(self) -> Iterator[tuple[int, int]]:
        return islice(iter(self.base), self.skip, None)


def sharded_loader(dataset, global_batch: int, shuffle: bool, seed: int, drop_last: bool,
                   ctx: DistContext, skip_batches: int = 0) -> DataLoader:
    """A loader yielding this rank's shard of each global batch (see the module docstring).

    With one process and no `skip_batches` it is `qanas.data.make_loader` itself.

    Args:
        skip_batches: leave out the first global batches of the epoch (a resume in
            the middle of an epoch); the rest are the same batches as without it.
    """
    from qanas.data import make_loader
    from qanas.data.loader import SeededSampler, worker_seed_generator

    if int(skip_batches) < 0:
        raise ConfigError(f"skip_batches must be >= 0; got {skip_batches!r}")
    if not ctx.is_distributed and not skip_batches:
        return make_loader(dataset, batch_size=global_batch, shuffle=shuffle, seed=seed,
                           drop_last=drop_last)
    generator = torch.Generator().manual_seed(int(seed))
    base = SeededSampler(dataset, shuffle, generator)  # as `make_loader` draws it
    if not ctx.is_distributed:
        keys = SkipKeys(base, int(skip_batches) * int(global_batch))
        return DataLoader(dataset, batch_size=int(global_batch), sampler=keys,
                          drop_last=drop_last, generator=worker_seed_generator(seed))
    shard = GlobalBatchShard(base, global_batch, ctx.rank, ctx.world_size, drop_last)
    keys = SkipKeys(shard, int(skip_batches) * shard.local)
    return DataLoader(dataset, batch_size=shard.local, sampler=keys, drop_last=False,
                      generator=worker_seed_generator(seed))


def all_reduce_gradients(params: Sequence[torch.nn.Parameter], extra: torch.Tensor,
                         ctx: DistContext) -> torch.Tensor:
    """Sums the gradients of `params` and the 1-D `extra` over all ranks in one all-reduce.

    Parameters without a gradient (not on any of the step's paths, identical on
    every rank because the paths are) are skipped. Returns the summed `extra`.
    """
    grads = [p.grad for p in params if p.grad is not None]
    if not ctx.is_distributed:
        return extra
    like = grads[0] if grads else extra
    flat = torch.cat([g.reshape(-1) for g in grads] + [extra.to(like).reshape(-1)])
    ctx.all_reduce_sum_(flat)
    offset = 0
    for g in grads:
        g.copy_(flat[offset:offset + g.numel()].view_as(g))
        offset += g.numel()
    return flat[offset:].to(extra)
