"""The supernet training loop: FairNAS/SPOS paths, accumulated gradients, atomic checkpoints.

One optimizer step = the sampler's paths (m for FairNAS, 1 for SPOS) each run
forward and backward on the same batch, gradients accumulated as the mean
(`path_loss="mean"`, default) or the sum (`"sum"`, as in the FairNAS paper) of
the paths' losses, clipped to `grad_clip`, then one optimizer and one scheduler
step. With AdamW (the default) the two agree up to Adam's epsilon and the
clipping, because Adam's update does not depend on the gradient's scale; with
SGD the mean divides the step of every candidate (trained by about one path of
m) by m, which is why SGD runs want `path_loss="sum"` or an m-times larger LR. BatchNorm stays in
train mode; each path updates the shared running statistics, which is why the
quick validation recalibrates BN per subnet (`qanas.train.evaluate`).

Determinism: the supernet's initial weights are drawn with torch's RNG seeded to
`config.seed` (`qanas.utils.seeding.seeded`, which gives the caller's RNG state
back); the data order of epoch e comes from a loader seeded with `(seed, e)`; the
sampler has its own generator; training draws nothing from the global RNGs. Every
checkpoint stores model, optimizer, scheduler, sampler and the caller's
torch/numpy/python RNG states (restored on resume), so a resumed run produces
bit-identical weights to an uninterrupted run. Checkpoints are written after each epoch and, within an epoch, every
`checkpoint_every` optimizer steps (`DEFAULT_CHECKPOINT_EVERY`, a few minutes of
CPU at the default settings), so a kill loses minutes, not an epoch. A mid-epoch
checkpoint also stores the epoch's position (`"epoch_progress"`: batches consumed,
the running loss sum); resuming rebuilds the epoch's loader from its seed and
skips the consumed batches at the sampler, without loading them, which yields
exactly the batches the uninterrupted run would have seen next.

Data parallel (under torchrun, `qanas.distributed`): `config.batch_size` is the
global batch; each rank trains on its disjoint shard of every global batch and
the gradients are summed by one all-reduce per step (`qanas.train.sharding`
explains why this beats DDP here). Every rank seeds its FairNAS sampler with
the shared seed, and each step all-gathers a digest of its paths and stops with
`DistributedMismatchError` if any rank drew other paths. The per-path loss is
the rank's summed pixel loss over the global count of labelled pixels, so the
reduced gradient is exactly the gradient of the global batch's loss. BatchNorm
is per rank (as in Once-for-All), not SyncBN: each rank normalises with the
statistics of its own shard (keep >= 4 images per rank) and keeps its own
running statistics, of which rank 0's are saved. Running statistics never reach
a score, because every subnet is BN-recalibrated before evaluation, and SyncBN
would cost one all-reduce per BN layer per path per step. Only rank 0 writes
checkpoints and runs the quick validation (its result is broadcast, so every
rank keeps the same history); weights and optimizer states stay identical on
all ranks, which is why any rank can resume from rank 0's checkpoint.
"""

from __future__ import annotations

import random
import time
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from qanas.distributed import DistContext, current, digest, resolve_device
from qanas.errors import CheckpointError, ConfigError
from qanas.train.checkpoint import FORMAT, load_checkpoint, load_model_state, save_checkpoint
from qanas.train.config import TrainConfig
from qanas.train.evaluate import majority_class_miou, subnet_miou
from qanas.train.optim import build_optimizer, build_scheduler
from qanas.train.samplers import build_sampler
from qanas.train.sharding import all_reduce_gradients, check_global_batch, sharded_loader
from qanas.utils.progress import progress
from qanas.utils.seeding import seeded

CHECKPOINT_NAME = "supernet.pt"
# Optimizer steps between mid-epoch checkpoints: a few minutes of CPU at the defaults
# (squeezenas-small, FairNAS m = 13 paths, batch 4, 64x128). A step costs 0.53 s wall on 2
# threads (453 steps in 240 s, the measurement in `qanas.train.config`'s docstring; rerun
# it with `benchmarks/train_supernet.py --budget-s 240 --spaces squeezenas-small`) and
# 1.0 CPU-s on 1 thread (`time.process_time` over 5 steps of `train_step`, on the shared
# 2-core machine at load ~12), so 300 steps are 2.7-5 minutes. A checkpoint of that
# supernet is 47.8 MB and took 0.82 CPU-s to serialise and write: under 0.6% of the work.
DEFAULT_CHECKPOINT_EVERY = 300


def build_datasets(config: TrainConfig) -> tuple:
    """The (train, calibration, val) datasets of `config` via `qanas.data.build_dataset`.

    The calibration set is the training split without augmentation; it feeds BN
    recalibration and the majority-class baseline of the quick validation.
    """
    from qanas.data import build_dataset

    def one(split: str, augment: bool, length: int | None):
        extra = {} if length is None else {"length": length}
        return build_dataset(config.dataset, split, image_size=config.image_size,
                             root=config.data_root, seed=config.seed, augment=augment, **extra)

    train = one("train", config.augment, config.train_length)
    calib = one("train", False, config.train_length) if config.augment else train
    return train, calib, one("val", False, config.val_length)


def epoch_seed(seed: int, epoch: int) -> int:
    """The data-order seed of `epoch`: a pure function, so a resumed run sees the same order."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


class SupernetTrainer:
    """Trains a search space's supernet with a path sampler; see the module docstring.

    Args:
        config: the resolved run configuration.
        out_dir: folder receiving `supernet.pt` after every epoch.
        datasets: optional `(train, calibration, val)` datasets (default:
            `build_datasets(config)`). They take the `(index, seed)` keys of
            `qanas.data.make_loader` and have `num_classes` and `ignore_index`.
        initialise: apply `config.init_from` (False when the weights come from a checkpoint).
        device: where the supernet trains ("cpu", "cuda"; "cuda" means cuda:LOCAL_RANK).
        dist: the process group (default: `qanas.distributed.current()`, one process
            unless `init_distributed` ran under torchrun).
        checkpoint_every: optimizer steps between mid-epoch checkpoints (None or 0:
            only at the end of each epoch). It does not change the result, so it is
            not part of the `TrainConfig`.

    Example:
        >>> trainer = SupernetTrainer(TrainConfig(space="squeezenas-small", epochs=3),
        ...                           "runs/sq")  # doctest: +SKIP
        >>> summary = trainer.fit()  # doctest: +SKIP
    """

    def __init__(self, config: TrainConfig, out_dir: str | Path, datasets=None, *,
                 initialise: bool = True, device: str | torch.device = "cpu",
                 dist: DistContext | None = None,
                 checkpoint_every: int | None = DEFAULT_CHECKPOINT_EVERY):
        from qanas.space import get_space
        from qanas.supernet import build_supernet

        if checkpoint_every is not None and int(checkpoint_every) < 0:
            raise ConfigError(f"checkpoint_every must be >= 0 steps (0: once per epoch); got "
                              f"{checkpoint_every!r}")
        self.checkpoint_every = int(checkpoint_every or 0)
        self.config = config
        self.dist = current() if dist is None else dist
        check_global_batch(config.batch_size, self.dist.world_size)
        self.device = resolve_device(device, self.dist.local_rank)
        self.out_dir = Path(out_dir)
        self.space = get_space(config.space)
        datasets = build_datasets(config) if datasets is None else datasets
        self.train_set, self.calib_set, self.val_set = datasets
        self.num_classes = int(self.train_set.num_classes)
        self.ignore_index = int(getattr(self.train_set, "ignore_index", 255))

        with seeded(config.seed):  # layer constructors draw their weights from torch's RNG
            supernet = build_supernet(self.space, self.num_classes)
            self.init_report = None
            if config.zero_init_residual:  # before init_from: pretrained gammas must win
                zero_init_residual(supernet)
            if config.init_from and initialise:
                self.init_report = _init_encoder(supernet, config.init_from)
            if config.qat:
                from qanas.train.qat import prepare_qat

                supernet = prepare_qat(supernet, config.quant_spec)
        self.model = supernet.to(self.device)
        self.sampler = build_sampler(config.sampler, self.space, config.seed)
        self.steps_per_epoch = self._steps_per_epoch()
        self.total_steps = self.steps_per_epoch * config.epochs
        self.optimizer = build_optimizer(self.model, config)
        self.scheduler = build_scheduler(self.optimizer, self.total_steps, config.warmup_fraction)
        self.epoch = 0
        self.step = 0
        self.history: list[dict[str, Any]] = []
        # Position inside the unfinished epoch `self.epoch` (restored from a mid-epoch
        # checkpoint): batches consumed and the running sum and count of step losses.
        self._progress = {"batches": 0, "loss_total": 0.0, "loss_steps": 0}
        self._calib = self._first_batches(self.calib_set, config.calib_batches)
        self._val = self._first_batches(self.val_set, config.val_batches)
        self.baseline = (majority_class_miou(self._calib, self._val, self.num_classes,
                                             self.ignore_index)
                         if self._calib and self._val else None)
        self._calib = _to_device(self._calib, self.device)
        self._val = _to_device(self._val, self.device)

    @property
    def calib_batches(self) -> list:
        """The first `config.calib_batches` batches of the calibration set, on the device
        (BatchNorm recalibration of the quick validation)."""
        return self._calib

    @property
    def val_batches(self) -> list:
        """The first `config.val_batches` batches of the val set, on the device."""
        return self._val

    # -- construction helpers -------------------------------------------------------------
    def _loader(self, dataset, shuffle: bool, seed: int, skip_batches: int = 0):
        """Training loader: this rank's shard of each global batch (all of it in one process).

        Training drops the last incomplete batch: a batch of one breaks BatchNorm.
        `skip_batches` leaves out the epoch's first batches (a mid-epoch resume).
        """
        return sharded_loader(dataset, self.config.batch_size, shuffle, seed,
                              drop_last=shuffle, ctx=self.dist, skip_batches=skip_batches)

    def _steps_per_epoch(self) -> int:
        batches = len(self.train_set) // self.config.batch_size
        if batches == 0:
            raise ConfigError(
                f"the training set has {len(self.train_set)} samples, fewer than one batch of "
                f"{self.config.batch_size}; lower --batch-size or use a larger dataset"
            )
        cap = self.config.steps_per_epoch
        return batches if cap is None else min(cap, batches)

    def _first_batches(self, dataset, count: int) -> list:
        from qanas.data import make_loader

        # Quick validation runs on rank 0 alone, on whole (unsharded) batches.
        loader = make_loader(dataset, batch_size=self.config.batch_size, shuffle=False, seed=0)
        return list(islice(iter(loader), count))

    # -- resume ---------------------------------------------------------------------------
    @classmethod
    def from_checkpoint(cls, path: str | Path, out_dir: str | Path | None = None,
                        epochs: int | None = None, datasets=None, *,
                        device: str | torch.device = "cpu",
                        dist: DistContext | None = None,
                        checkpoint_every: int | None = DEFAULT_CHECKPOINT_EVERY
                        ) -> SupernetTrainer:
        """A trainer continuing the run stored at `path` (optionally extended to `epochs`).

        Resuming with the stored number of epochs reproduces the uninterrupted run
        bit for bit, from an end-of-epoch or a mid-epoch checkpoint; a different
        `epochs` stretches the cosine schedule from here on. Under torchrun every
        rank reads `path` (a shared filesystem on several nodes).
        """
        payload = load_checkpoint(path)
        config = TrainConfig.from_dict(payload["config"])
        if epochs is not None and epochs != config.epochs:
            if epochs < payload["epoch"]:
                raise ConfigError(f"--epochs {epochs} is below the {payload['epoch']} epochs "
                                  f"already trained in {path}; pass a larger --epochs")
            config = config.replace(epochs=epochs)
        trainer = cls(config, out_dir if out_dir is not None else Path(path).parent, datasets,
                      initialise=False, device=device, dist=dist,
                      checkpoint_every=checkpoint_every)
        trainer.load_state(payload, source=str(path))
        return trainer

    def load_state(self, payload: dict[str, Any], source: str) -> None:
        """Restores model, optimizer, scheduler, sampler, RNG, epoch, step and history."""
        if int(payload["num_classes"]) != self.num_classes:
            raise CheckpointError(f"{source} was trained with {payload['num_classes']} classes, "
                                  f"the dataset has {self.num_classes}; resume on the same data")
        load_model_state(self.model, payload["model"], source)
        self.optimizer.load_state_dict(payload["optimizer"])  # moves its state to the params' device
        self.scheduler.load_state_dict(payload["scheduler"])
        schedule = self.scheduler.lr_lambdas[0]
        schedule.total_steps = self.total_steps  # a changed --epochs stretches the horizon
        self.sampler.load_state_dict(payload["rng"]["sampler"])
        _set_rng_state(payload["rng"])
        self.epoch = int(payload["epoch"])
        self.step = int(payload["step"])
        self.history = list(payload["history"])
        progress = payload.get("epoch_progress")  # absent: saved at the end of an epoch
        self._progress = {"batches": 0, "loss_total": 0.0, "loss_steps": 0}
        if progress is not None:
            if int(progress["epoch"]) != self.epoch:
                raise CheckpointError(f"{source}: its mid-epoch position is for epoch "
                                      f"{progress['epoch']}, its state for epoch {self.epoch}; "
                                      f"the file is inconsistent, retrain")
            self._progress = {"batches": int(progress["batches"]),
                              "loss_total": float(progress["loss_total"]),
                              "loss_steps": int(progress["loss_steps"])}

    # -- training -------------------------------------------------------------------------
    def fit(self, until_epoch: int | None = None) -> dict[str, Any]:
        """Trains up to `until_epoch` (default: `config.epochs`), checkpointing every epoch.

        Within an epoch a checkpoint is also written every `checkpoint_every` steps.

        Returns:
            {"checkpoint", "epochs", "final_loss", "val_miou", "baseline_miou", "history"}.
        """
        last = self.config.epochs if until_epoch is None else min(until_epoch, self.config.epochs)
        checkpoint = self.out_dir / CHECKPOINT_NAME
        for epoch in range(self.epoch, last):
            start = time.perf_counter()
            loss = self._train_epoch(epoch, checkpoint)
            val = self.dist.on_main(self.quick_val, share=True)
            self.epoch = epoch + 1
            self.history.append({
                "epoch": self.epoch,
                "loss": loss,
                "lr": self.optimizer.param_groups[0]["lr"],
                "val_miou": val,
                "baseline_miou": None if self.baseline is None else self.baseline["miou"],
                "seconds": round(time.perf_counter() - start, 3),
            })
            self.dist.on_main(lambda: self.save(checkpoint))
        self.dist.on_main(lambda: checkpoint.exists() or self.save(checkpoint))
        final = self.history[-1] if self.history else {}
        return {
            "checkpoint": str(checkpoint),
            "epochs": self.epoch,
            "final_loss": final.get("loss"),
            "val_miou": final.get("val_miou", {}),
            "baseline_miou": None if self.baseline is None else self.baseline["miou"],
            "history": self.history,
        }

    def _train_epoch(self, epoch: int, checkpoint: Path | None = None,
                     stop_after: int | None = None) -> float | None:
        """Trains the rest of `epoch`; returns its mean step loss.

        Args:
            epoch: the epoch (0-based); a restored mid-epoch position is continued.
            checkpoint: where mid-epoch checkpoints go (None: none are written).
            stop_after: stop after this many batches of this call, leaving the epoch
                unfinished (None returned); what a kill at that point leaves, for tests.
        """
        self.model.train()
        done = first = self._progress["batches"]
        loader = self._loader(self.train_set, shuffle=True,
                              seed=epoch_seed(self.config.seed, epoch), skip_batches=done)
        total, steps = self._progress["loss_total"], self._progress["loss_steps"]
        quiet = {} if self.dist.is_main else {"disable": True}  # one bar per job, on rank 0
        bar = progress(islice(loader, self.steps_per_epoch - done),
                       total=self.steps_per_epoch, initial=done,
                       desc=f"epoch {epoch + 1}/{self.config.epochs}", **quiet)
        for image, mask in bar:
            loss = self.train_step(image, mask)
            done += 1
            if loss is not None:
                total += loss
                steps += 1
                bar.set_postfix(loss=f"{loss:.3f}",
                                lr=f"{self.optimizer.param_groups[0]['lr']:.2e}")
            self._progress = {"batches": done, "loss_total": total, "loss_steps": steps}
            unfinished = done < self.steps_per_epoch
            if (checkpoint is not None and unfinished and loss is not None
                    and self.checkpoint_every and self.step % self.checkpoint_every == 0):
                self.dist.on_main(lambda: self.save(checkpoint))
            if stop_after is not None and unfinished and done - first >= stop_after:
                return None
        self._progress = {"batches": 0, "loss_total": 0.0, "loss_steps": 0}
        if steps == 0:
            raise ConfigError(f"epoch {epoch + 1} had no batch with labelled pixels; check that "
                              f"the dataset masks are not all ignore_index {self.ignore_index}")
        return total / steps

    def train_step(self, image: torch.Tensor, mask: torch.Tensor) -> float | None:
        """One optimizer step over the sampler's paths; returns the mean path loss.

        `image`, `mask` are this rank's shard of the global batch (all of it in one
        process). A global batch without labelled pixels is skipped (None), before
        any path is drawn.
        """
        image, mask = image.to(self.device), mask.to(self.device)
        labelled = (mask != self.ignore_index).sum().reshape(1).to(torch.float64)
        labelled = float(self.dist.all_reduce_sum_(labelled)[0])
        if labelled == 0:
            return None
        paths = self.sampler.next_paths()
        self.dist.check_same(digest([cfg.to_str() for cfg in paths]),
                             f"the {self.config.sampler} paths of step {self.step}")
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for cfg in paths:
            self.model.set_active(cfg)
            logits = self.model(image)
            if self.dist.is_distributed:  # this rank's share of the global batch's mean loss
                loss = F.cross_entropy(logits, mask, ignore_index=self.ignore_index,
                                       reduction="sum") / labelled
            else:
                loss = F.cross_entropy(logits, mask, ignore_index=self.ignore_index)
            (loss / len(paths) if self.config.path_loss == "mean" else loss).backward()
            total += float(loss.detach()) / len(paths)
        total = float(all_reduce_gradients(list(self.model.parameters()),
                                           torch.tensor([total], dtype=torch.float64),
                                           self.dist)[0])
        if not np.isfinite(total):
            raise FloatingPointError(
                f"training loss became {total} at step {self.step}; lower --lr (now "
                f"{self.config.lr}) or keep --grad-clip enabled"
            )
        if self.config.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        return total

    def quick_val(self) -> dict[str, float]:
        """mIoU of each `config.eval_subnets` on the first val batches (BN recalibrated)."""
        if not self._val:
            return {}
        out = {}
        for name in self.config.eval_subnets:
            cfg = self.space.resolve(name)
            out[name] = round(subnet_miou(self.model, cfg, self._calib, self._val,
                                          self.ignore_index), 6)
        self.model.train()
        return out

    # -- checkpoints ----------------------------------------------------------------------
    def payload(self) -> dict[str, Any]:
        """The checkpoint dict of the current state (format "qanas-supernet/1").

        In the middle of an epoch it also holds "epoch_progress": the unfinished
        epoch, its batches consumed and its running loss sum and step count.
        """
        dataset = {"name": self.config.dataset, "root": self.config.data_root}
        mid_epoch = ({"epoch_progress": {"epoch": self.epoch, **self._progress}}
                     if self._progress["batches"] else {})
        return {**mid_epoch,
            "format": FORMAT,
            "space": self.config.space,
            "num_classes": self.num_classes,
            "image_size": list(self.config.image_size),
            "dataset": dataset,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "epoch": self.epoch,
            "step": self.step,
            "rng": {**_get_rng_state(), "sampler": self.sampler.state_dict()},
            "config": self.config.to_dict(),
            "history": self.history,
            "qat": self.config.qat,
            "quant_spec": self.config.quant_spec,
            "sampler_counts": [c.tolist() for c in self.sampler.counts],
            "baseline": self.baseline,
        }

    def save(self, path: str | Path) -> Path:
        """Writes the current state to `path` atomically."""
        return save_checkpoint(path, self.payload())


def _to_device(batches: list, device: torch.device) -> list:
    return [tuple(t.to(device) for t in batch) for batch in batches]


def _get_rng_state() -> dict[str, Any]:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy": [kind, keys.tolist(), int(pos), int(has_gauss), float(gauss)],
        "python": _to_lists(random.getstate()),
    }


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    random.setstate(_to_tuples(state["python"]))


def _to_lists(obj):
    return [_to_lists(v) for v in obj] if isinstance(obj, (list, tuple)) else obj


def _to_tuples(obj):
    return tuple(_to_tuples(v) for v in obj) if isinstance(obj, list) else obj


def _init_encoder(supernet, path: str) -> dict[str, Any]:
    """Loads a torchvision-layout MobileNetV2 state dict file into the supernet's encoder.

    Returns:
        {"path", "loaded", "missing", "unused"}: key counts of the load report.
    """
    try:
        from qanas.supernet.pretrained import load_mobilenet_v2_file
    except ImportError:
        raise ConfigError("--init-from needs qanas.supernet.pretrained (not available in this "
                          "checkout); train without --init-from") from None
    report = load_mobilenet_v2_file(supernet, path)
    return {"path": str(path), "loaded": len(report.loaded), "missing": len(report.missing),
            "unused": len(report.unused)}


def zero_init_residual(model: torch.nn.Module) -> int:
    """Zeroes the last BatchNorm gamma of every residual block, so each block starts as identity.

    A block counts as residual when it has a true `use_residual` or `use_res`
    attribute (the SqueezeNAS and MobileNetV2 blocks). Returns the number of
    blocks changed.
    """
    changed = 0
    for module in model.modules():
        if not (getattr(module, "use_residual", False) or getattr(module, "use_res", False)):
            continue
        norms = [m for m in module.modules() if isinstance(m, torch.nn.BatchNorm2d)]
        if norms:
            torch.nn.init.zeros_(norms[-1].weight)
            changed += 1
    return changed
