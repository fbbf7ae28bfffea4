"""Demo stage 1: a FairNAS supernet, trained in float and then briefly with int8 fake-quant."""

from __future__ import annotations

from pathlib import Path

from qanas.demo.config import DemoConfig
from qanas.train.config import TrainConfig
from qanas.train.job import SupernetRun, train_supernet

#: QAT phase LR as a share of the float phase's peak LR.
QAT_LR_SCALE = 0.1


def supernet_config(config: DemoConfig) -> TrainConfig:
    """The `TrainConfig` of the demo's float FairNAS phase."""
    return TrainConfig(
        space=config.space, dataset=config.dataset, data_root=config.data_root,
        image_size=tuple(config.image_size), epochs=config.epochs,
        batch_size=config.batch_size, steps_per_epoch=config.steps_per_epoch,
        val_batches=max(1, -(-config.val_images // config.batch_size)), seed=config.seed,
    )


def float_supernet_phase(config: DemoConfig, out: Path, force: bool = False) -> SupernetRun:
    """Float FairNAS training, the job of `qanas train-supernet`, into ``out/supernet``."""
    return train_supernet(out / "supernet", supernet_config(config), force=force)


def qat_supernet_phase(float_run: SupernetRun, steps: int, out: Path,
                       force: bool = False) -> SupernetRun:
    """Continues FairNAS training for `steps` steps with int8 fake-quant (a QAT-aware supernet).

    The training job starts a QAT run (`qanas.quant.qat.prepare_supernet_qat`: same
    parameter names; the quantizers' scales start from the data of the first step) in
    ``out/supernet_qat`` from the float run's weights and datasets, trained with strict
    fairness at `QAT_LR_SCALE` × the float LR, no warmup.
    """
    base = float_run.trainer.config
    qat_config = base.replace(qat=True, epochs=1, steps_per_epoch=steps,
                              lr=base.lr * QAT_LR_SCALE, warmup_fraction=0.0)
    return train_supernet(out / "supernet_qat", qat_config, force=force,
                          continue_from=float_run.trainer)


def training_summary(float_run: SupernetRun, qat_run: SupernetRun | None,
                     qat_steps: int) -> dict:
    """The `training` section of results.json: both phases' history, the final quick mIoU."""
    history = [{**h, "phase": "float"} for h in float_run.history]
    final = float_run
    if qat_run is not None:
        history += [{**h, "phase": "qat", "epoch": len(float_run.history) + h["epoch"]}
                    for h in qat_run.history]
        final = qat_run
    return {
        "epochs": float_run.result["epochs"],
        "qat_steps": 0 if qat_run is None else int(qat_steps),
        "final_loss": final.result["final_loss"],
        "val_miou": final.result["val_miou"],
        "baseline_miou": float_run.result["baseline_miou"],
        "history": history,
    }
