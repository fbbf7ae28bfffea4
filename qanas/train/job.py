"""The training jobs: `run_training` (a supernet, new or resumed) and `run_standalone` (one subnet).

`run_training` is the job of `qanas train-supernet`; `train_supernet` is the same run
that also hands back the trainer (the trained model and its data), which is what the
demo chains its stages with, and can start from another run's trained weights
(`continue_from`: a QAT-aware phase after the float one). The folder holds
``supernet.pt`` (atomically, after every epoch and every `checkpoint_every` steps
within one), ``config.json`` (the resolved `TrainConfig` under ``"train"``, seed,
versions) and ``result.json``. A resumed run continues ``supernet.pt`` with its stored
`TrainConfig`; `changes` (fields the caller set explicitly) must agree with it, except
``epochs``, which may extend the run.
One process per folder (`qanas.utils.runlock`); under torchrun only rank 0 writes it.
`run_standalone` is the job of `qanas train`: ``standalone.pt``, ``config.json`` (the
`StandaloneConfig` under ``"standalone"``) and ``result.json`` in its folder, one process
per folder too.

Example:
    >>> run_training("runs/sq", TrainConfig(space="squeezenas-small", epochs=3))  # doctest: +SKIP
    >>> run_training("runs/sq", resume=True, changes={"epochs": 6})  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from qanas.distributed import DistContext, current
from qanas.errors import CheckpointError, ConfigError
from qanas.train.checkpoint import load_checkpoint
from qanas.train.config import TrainConfig
from qanas.train.trainer import CHECKPOINT_NAME, DEFAULT_CHECKPOINT_EVERY, SupernetTrainer

if TYPE_CHECKING:  # pragma: no cover
    from qanas.train.standalone import StandaloneConfig


@dataclass
class SupernetRun:
    """A finished supernet training: the trainer and what `run_training` returns.

    Attributes:
        trainer: holds the trained `model`, its `config`, datasets and cached batches.
        result: {"checkpoint", "epochs", "final_loss", "val_miou", "baseline_miou",
            "sampler_counts", "init", "seconds"}; ``result.json`` adds ``history``.
    """

    trainer: SupernetTrainer
    result: dict

    @property
    def history(self) -> list[dict]:
        """One entry per epoch trained in this run (``result.json``'s ``history``)."""
        return self.trainer.history


def run_training(out: str | Path, config: TrainConfig | None = None, *, resume: bool = False,
                 changes: dict | None = None, force: bool = False,
                 device: str | torch.device = "cpu",
                 checkpoint_every: int | None = DEFAULT_CHECKPOINT_EVERY,
                 dist: DistContext | None = None) -> dict:
    """Trains `config` into `out` (or, with `resume`, continues the run stored there).

    Returns:
        `SupernetRun.result`.

    Raises:
        ConfigError: no checkpoint to resume, `changes` that disagree with it, or neither
            or both of `config` and `resume`.
    """
    return train_supernet(out, config, resume=resume, changes=changes, force=force,
                          device=device, checkpoint_every=checkpoint_every, dist=dist).result


def train_supernet(out: str | Path, config: TrainConfig | None = None, *, resume: bool = False,
                   changes: dict | None = None, force: bool = False,
                   device: str | torch.device = "cpu",
                   checkpoint_every: int | None = DEFAULT_CHECKPOINT_EVERY,
                   dist: DistContext | None = None,
                   continue_from: SupernetTrainer | None = None) -> SupernetRun:
    """`run_training`, returning the trainer with the result.

    Args:
        continue_from: a trained supernet (of the same space) whose weights and datasets a
            new run starts from: its parameters are loaded by name (a QAT `config`'s
            quantizers, which it lacks, start from data), its datasets are reused.

    Raises:
        ConfigError: as `run_training`; `continue_from` with `resume`.
        CheckpointError: `continue_from`'s weights do not fit the supernet of `config`.
    """
    from qanas.utils.io import check_output_dir
    from qanas.utils.runlock import lock_run_dir

    dist = current() if dist is None else dist
    out = check_output_dir(out)
    if resume == (config is not None):
        raise ConfigError("give a TrainConfig for a new run, or resume=True to continue the "
                          "one in the folder, not both")
    if resume and continue_from is not None:
        raise ConfigError("a resumed run continues its own checkpoint; continue_from starts "
                          "a new one")
    if resume and not (out / CHECKPOINT_NAME).is_file():
        raise ConfigError(f"--resume: no checkpoint at {out / CHECKPOINT_NAME}; start the "
                          f"run without --resume")
    lock = dist.on_main(lambda: lock_run_dir(out, "train-supernet"))
    try:
        start = time.perf_counter()
        if resume:
            trainer = _resumed(out, changes or {}, device, checkpoint_every, dist)
        else:
            from qanas.utils.io import prepare_output_dir

            dist.on_main(lambda: prepare_output_dir(out, force, marker=CHECKPOINT_NAME))
            trainer = SupernetTrainer(config, out, device=device, dist=dist,
                                      checkpoint_every=checkpoint_every,
                                      datasets=_datasets_of(continue_from))
            if continue_from is not None:
                _load_weights(trainer, continue_from)
        return SupernetRun(trainer, _fit_and_record(trainer, out, resume, dist, start))
    finally:
        if lock is not None:
            lock.release()


def _datasets_of(trainer: SupernetTrainer | None) -> tuple | None:
    """(train, calibration, val) of `trainer`, None without one (the config's are built)."""
    return None if trainer is None else (trainer.train_set, trainer.calib_set, trainer.val_set)


def _load_weights(trainer: SupernetTrainer, source: SupernetTrainer) -> None:
    """Loads `source`'s parameters into `trainer`'s supernet; only fake-quant ones may lack."""
    missing, unexpected = trainer.model.load_state_dict(source.model.state_dict(), strict=False)
    foreign = [k for k in missing if "fake_quant" not in k]
    if foreign or unexpected:
        raise CheckpointError(f"the supernet of {source.out_dir} does not fit the one of "
                              f"{trainer.out_dir}: missing {foreign[:5]}, unexpected "
                              f"{list(unexpected)[:5]}")


def _resumed(out: Path, changes: dict, device, checkpoint_every, dist) -> SupernetTrainer:
    """The trainer continuing ``out/supernet.pt``; `changes` must match its config."""
    checkpoint = out / CHECKPOINT_NAME
    stored = TrainConfig.from_dict(load_checkpoint(checkpoint)["config"]).to_dict()
    conflicts = {
        k: (v, stored[k]) for k, v in TrainConfig(**{**stored, **changes}).to_dict().items()
        if k != "epochs" and k in changes and v != stored[k]
    }
    if conflicts:
        listed = "; ".join(f"--{k.replace('_', '-')} {v!r} vs stored {s!r}"
                           for k, (v, s) in sorted(conflicts.items()))
        raise ConfigError(f"--resume continues {checkpoint} with its stored configuration, "
                          f"but these flags differ: {listed}. Drop them, or start a new run "
                          f"in another --out (or with --force)")
    return SupernetTrainer.from_checkpoint(checkpoint, out, epochs=changes.get("epochs"),
                                           device=device, dist=dist,
                                           checkpoint_every=checkpoint_every)


def _fit_and_record(trainer: SupernetTrainer, out: Path, resumed: bool, dist,
                    start: float) -> dict:
    """Writes config.json, trains, writes result.json; returns the result (`start`: when
    the run began, for its ``seconds``)."""
    from qanas.utils.io import atomic_write_json, write_run_metadata

    config = trainer.config
    dist.on_main(lambda: write_run_metadata(
        out, {"train": config.to_dict(), "resumed": bool(resumed),
              "num_classes": trainer.num_classes, "init": trainer.init_report,
              "world_size": dist.world_size, "device": str(trainer.device)}, config.seed))
    summary = trainer.fit()
    result = {
        "checkpoint": summary["checkpoint"],
        "epochs": summary["epochs"],
        "final_loss": summary["final_loss"],
        "val_miou": summary["val_miou"],
        "baseline_miou": summary["baseline_miou"],
        "sampler_counts": [c.tolist() for c in trainer.sampler.counts],
        "init": trainer.init_report,
        "seconds": round(time.perf_counter() - start, 3),
    }
    dist.on_main(lambda: atomic_write_json(out / "result.json",
                                           {**result, "history": summary["history"]}))
    return result


def run_standalone(config: StandaloneConfig, out: str | Path, *, force: bool = False,
                   export_onnx: str | Path | None = None,
                   progress: Callable[[str], None] | None = None) -> dict:
    """Trains the subnet of `config` into `out` (`train_standalone`) and records the run.

    Args:
        force: replace an earlier run's ``standalone.pt`` in `out`.
        export_onnx: also export the int8 model there as QDQ ONNX.
        progress: receives one line per epoch.

    Returns:
        `train_standalone`'s result, which ``result.json`` holds too.
    """
    from qanas.train.standalone import CHECKPOINT_NAME as STANDALONE_CHECKPOINT
    from qanas.train.standalone import train_standalone
    from qanas.utils.io import (
        atomic_write_json,
        check_output_dir,
        prepare_output_dir,
        write_run_metadata,
    )
    from qanas.utils.runlock import lock_run_dir

    out = check_output_dir(out)
    if export_onnx:
        check_output_dir(Path(export_onnx).parent, "--export-onnx's folder")
    with lock_run_dir(out, "train"):
        prepare_output_dir(out, force, marker=STANDALONE_CHECKPOINT)
        write_run_metadata(out, {"standalone": config.to_dict()}, config.seed)
        result = train_standalone(config, out, progress=progress, export_onnx=export_onnx)
        atomic_write_json(out / "result.json", result)
    return result


__all__ = ["SupernetRun", "run_standalone", "run_training", "train_supernet"]
