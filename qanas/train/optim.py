"""Optimizers and the warmup + cosine learning-rate schedule of supernet training."""

from __future__ import annotations

import math

import torch
from torch import nn

from qanas.errors import ConfigError
from qanas.train.config import TrainConfig


class WarmupCosine:
    """LR multiplier: linear warmup from 1/warmup to 1, then cosine decay to 0 at `total_steps`.

    A callable object (not a lambda) so that `LambdaLR.state_dict()` saves it.
    """

    def __init__(self, total_steps: int, warmup_steps: int):
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)

    def __call__(self, step: int) -> float:
        """The multiplier of the peak LR applied after `step` optimizer steps."""
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (step - self.warmup_steps) / span)
        return 0.5 * (1.0 + math.cos(math.pi * progress))


def split_decay_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    """Parameter groups: weight decay on conv/linear weights, none on biases and norm affines."""
    decay, no_decay = [], []
    for _, param in model.named_parameters():
        if not param.requires_grad:
            continue
        (decay if param.ndim > 1 else no_decay).append(param)
    return [{"params": decay, "weight_decay": weight_decay},
            {"params": no_decay, "weight_decay": 0.0}]


def build_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    """SGD (Nesterov momentum) or AdamW over `model`, with decay groups as in `split_decay_groups`."""
    groups = split_decay_groups(model, config.weight_decay)
    if config.optimizer == "sgd":
        return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum,
                               nesterov=config.momentum > 0)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=config.lr)
    raise ConfigError(f"unknown optimizer {config.optimizer!r}; choose sgd or adamw")


def build_scheduler(optimizer: torch.optim.Optimizer, total_steps: int,
                    warmup_fraction: float) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step `LambdaLR` following `WarmupCosine` over `total_steps` optimizer steps."""
    warmup = int(round(warmup_fraction * total_steps))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, WarmupCosine(total_steps, warmup))
