"""Demo stage 4: a short QAT fine-tune of the chosen subnet, from its inherited weights."""

from __future__ import annotations

from itertools import islice

import torch

from qanas.demo.config import DemoConfig

#: Fine-tuning LR as a share of the supernet's peak LR.
QAT_LR_SCALE = 0.1


def qat_finetune(trainer, scorer, cfg, config: DemoConfig) -> tuple[torch.nn.Module, dict]:
    """Brevitas QAT of subnet `cfg` for `config.qat_steps` steps; returns (model, section).

    The subnet is extracted from the supernet with recalibrated BatchNorm
    (`scorer.prepare`), BN-folded and quantized exactly as for deployment and
    calibrated (`qanas.quant.subnet_qat.prepare_qat`), then trained with straight-through
    rounding at `QAT_LR_SCALE` × the supernet's LR. The int8 mIoU before (the
    calibrated post-training model) and after is measured on the scorer's
    validation images. With ``qat_steps == 0`` the post-training model is returned.
    A mixed-precision `cfg` (``...@w84...``) is quantized and trained at its per-layer
    weight bits (`qanas.train.standalone.subnet_quant_spec`).
    """
    from qanas.data import make_loader
    from qanas.quant.subnet_qat import prepare_qat
    from qanas.score.miou import evaluate_miou
    from qanas.space.bits import arch_of
    from qanas.train.standalone import TrainingPhase, subnet_quant_spec

    num_classes, ignore = scorer.supernet.num_classes, scorer.ignore_index
    subnet = scorer.prepare(arch_of(cfg))
    spec = subnet_quant_spec(scorer.spec, cfg, subnet, scorer.image_size, num_classes)
    ptq = scorer.quantize(subnet, spec=spec)  # a copy: `subnet` stays float for the QAT
    with torch.inference_mode():
        before = evaluate_miou(ptq, scorer.eval_batches, num_classes, ignore)["miou"]
    section = {"steps": int(config.qat_steps), "miou_int8_before": float(before)}
    if config.qat_steps <= 0:
        return ptq.eval(), {**section, "miou_int8_after": float(before), "losses": []}
    qmodel = prepare_qat(subnet, spec, scorer.train_batches)
    base = trainer.config
    lr = trainer.optimizer.defaults["lr"] * QAT_LR_SCALE
    phase_config = base.replace(lr=lr, warmup_fraction=0.0)
    phase = TrainingPhase(qmodel, phase_config, config.qat_steps, ignore)
    loader = make_loader(trainer.train_set, batch_size=base.batch_size, shuffle=True,
                         seed=config.seed + 1, drop_last=True)
    losses, done = [], 0
    while done < config.qat_steps:
        take = min(len(loader), config.qat_steps - done)
        losses.append(phase.epoch(islice(iter(loader), take)))
        done += take
    qmodel.eval()
    with torch.inference_mode():
        after = evaluate_miou(qmodel, scorer.eval_batches, num_classes, ignore)["miou"]
    return qmodel, {**section, "miou_int8_after": float(after), "lr": lr, "losses": losses}
