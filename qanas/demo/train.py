"""Demo stage 1: a FairNAS supernet, trained in float and then briefly with int8 fake-quant."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qanas.demo.config import DemoConfig
from qanas.errors import CheckpointError

#: QAT phase LR as a share of the float phase's peak LR.
QAT_LR_SCALE = 0.1


def train_supernet(config: DemoConfig, out: Path) -> tuple[Any, dict]:
    """Float FairNAS training (`qanas.train`); returns the trainer and its summary."""
    from qanas.train.config import TrainConfig
    from qanas.train.trainer import SupernetTrainer

    train_config = TrainConfig(
        space=config.space, dataset=config.dataset, data_root=config.data_root,
        image_size=tuple(config.image_size), epochs=config.epochs,
        batch_size=config.batch_size, steps_per_epoch=config.steps_per_epoch,
        val_batches=max(1, -(-config.val_images // config.batch_size)), seed=config.seed,
    )
    trainer = SupernetTrainer(train_config, out / "supernet")
    return trainer, trainer.fit()


def qat_supernet_phase(trainer, steps: int, out: Path) -> tuple[Any, dict]:
    """Continues FairNAS training for `steps` steps with int8 fake-quant (a QAT-aware supernet).

    The float weights are copied into a supernet prepared with
    `qanas.quant.qat.prepare_supernet_qat` (same parameter names; the quantizers'
    scales start from the data of the first step) and trained with strict fairness at
    `QAT_LR_SCALE` × the float LR, no warmup. Returns the QAT trainer and its summary.
    """
    from qanas.train.trainer import SupernetTrainer

    base = trainer.config
    lr = trainer.optimizer.defaults["lr"] * QAT_LR_SCALE
    qat_config = base.replace(qat=True, epochs=1, steps_per_epoch=steps, lr=lr,
                              warmup_fraction=0.0)
    qat = SupernetTrainer(qat_config, out / "supernet_qat",
                          datasets=(trainer.train_set, trainer.calib_set, trainer.val_set))
    missing, unexpected = qat.model.load_state_dict(trainer.model.state_dict(), strict=False)
    foreign = [k for k in missing if "fake_quant" not in k]
    if foreign or unexpected:
        raise CheckpointError(f"the float supernet does not fit its QAT twin: missing "
                              f"{foreign[:5]}, unexpected {list(unexpected)[:5]}")
    return qat, qat.fit()


def training_summary(float_summary: dict, qat_summary: dict | None, qat_steps: int) -> dict:
    """The `training` section of results.json: both phases' history, the final quick mIoU."""
    history = [{**h, "phase": "float"} for h in float_summary["history"]]
    final = float_summary
    if qat_summary is not None:
        history += [{**h, "phase": "qat", "epoch": len(float_summary["history"]) + h["epoch"]}
                    for h in qat_summary["history"]]
        final = qat_summary
    return {
        "epochs": float_summary["epochs"],
        "qat_steps": 0 if qat_summary is None else int(qat_steps),
        "final_loss": final["final_loss"],
        "val_miou": final["val_miou"],
        "baseline_miou": float_summary["baseline_miou"],
        "history": history,
    }
