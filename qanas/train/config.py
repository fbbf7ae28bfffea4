"""`TrainConfig`: the frozen, fully resolved description of one supernet training run.

The config is what a checkpoint stores and what `config.json` records, so it is
JSON-friendly (`to_dict` / `from_dict`, the latter rejecting unknown keys) and
every default is resolved at construction: a `TrainConfig` read back from a
checkpoint rebuilds exactly the same run.

Why the defaults are what they are (squeezenas-small, FairNAS, m = 13 paths per
step, synthetic 64x128; measured with `benchmarks/train_supernet.py`, int8
mIoU of the seed subnet beside the majority-class baseline of ~0.12):

* **AdamW at 1e-2** (5% linear warmup, cosine). FairNAS trains each candidate
  on about one path of m per step; with the path losses averaged, SGD moves a
  candidate's weights by lr/m per step, so the old default (SGD 0.05, batch 8,
  augmented) reached only 0.15 seed / 0.13 max after 150 steps. Adam normalises every parameter's step, so
  the 1/m disappears (and mean vs sum of the path losses stops mattering); at
  40 steps 1e-2 reached a lower loss than 3e-3.
* **Batch 4**: a step costs m forward/backward passes; 4 images per pass gave
  more mIoU per CPU second than 8 (fewer updates) or 2 (per-op overhead
  dominates, so a step costs ~70% of a batch-4 step).
* **No augmentation on "synthetic"**: every index is a new random scene, so
  crops and flips add nothing in a short run. Real datasets keep it on.
* **Zero-initialised last BN gamma of residual blocks**: every residual
  candidate starts as the identity, so the 13 paths of a step start out as the
  same shallow network and the shared stem and head learn one consistent
  function first; at 120 steps it took seed/max int8 mIoU from 0.14/0.12 to
  0.21/0.21.
* BN momentum is left alone: subnets are scored after BN recalibration.

With these defaults, 240 s of training on 2 threads (453 steps) gave int8
mIoU 0.62 seed / 0.63 max / 0.23 min against a 0.12 baseline.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from qanas.errors import ConfigError
from qanas.utils.records import reject_unknown_keys

OPTIMIZERS = ("sgd", "adamw")
# Datasets trained without augmentation unless asked: "synthetic" draws a new scene per
# index, so crops and flips add no information and only slow down a short run.
UNAUGMENTED_DATASETS = ("synthetic",)
SAMPLERS = ("fairnas", "spos")
PATH_LOSSES = ("sum", "mean")
EVAL_SUBNETS = ("max", "min", "seed")

# Per-optimizer defaults used when `lr` / `weight_decay` are left as None.
DEFAULT_LR = {"sgd": 0.05, "adamw": 1e-2}
DEFAULT_WEIGHT_DECAY = {"sgd": 4e-5, "adamw": 1e-2}


@dataclass(frozen=True)
class TrainConfig:
    """Every knob of `qanas train-supernet`, resolved.

    Attributes:
        space: registered search-space name, e.g. "squeezenas-small".
        dataset: registered dataset name, e.g. "synthetic".
        data_root: dataset folder (None for "synthetic").
        image_size: training/evaluation (H, W).
        epochs: number of epochs; the cosine schedule spans all of them.
        batch_size: images per forward pass (each of the m fair paths sees the same batch).
        lr: peak learning rate (None: 1e-2 for AdamW, 0.05 for SGD).
        optimizer: "adamw" (default) or "sgd" (Nesterov momentum 0.9).
        weight_decay: decoupled (AdamW) or L2 (SGD) decay (None: per-optimizer default).
        momentum: SGD momentum.
        warmup_fraction: fraction of all steps with a linear LR warmup.
        grad_clip: max global gradient norm per optimizer step (0 disables clipping).
        sampler: "fairnas" (strict fairness, m paths per step) or "spos" (one uniform path).
        path_loss: "mean" or "sum" of the m path losses per step ("sum" is the FairNAS
            paper's gradient accumulation; equivalent under AdamW, m times the step under SGD).
        zero_init_residual: zero the last BatchNorm gamma of every residual block at init.
        qat: train the supernet with Brevitas fake-quant (QAT supernet).
        quant_spec: the `QuantSpec` dict used when `qat` (None: the quantization default).
        init_from: MobileNetV2 state-dict file used to initialise the encoder.
        seed: seeds weights, path sampling and data order.
        steps_per_epoch: cap on optimizer steps per epoch (None: the whole training set).
        augment: random scale-crop/flip on training images (None: off for "synthetic",
            on for every other dataset).
        train_length / val_length: number of samples of the synthetic dataset (None: its default).
        val_batches: batches of the val split used by the per-epoch quick mIoU.
        calib_batches: training batches used to recalibrate BN before the quick mIoU.
        eval_subnets: subnets evaluated each epoch ("max", "min", "seed" or arch strings).
    """

    space: str
    dataset: str = "synthetic"
    data_root: str | None = None
    image_size: tuple[int, int] = (64, 128)
    epochs: int = 10
    batch_size: int = 4
    lr: float | None = None
    optimizer: str = "adamw"
    weight_decay: float | None = None
    momentum: float = 0.9
    warmup_fraction: float = 0.05
    grad_clip: float = 5.0
    sampler: str = "fairnas"
    path_loss: str = "mean"
    zero_init_residual: bool = True
    qat: bool = False
    quant_spec: dict | None = None
    init_from: str | None = None
    seed: int = 0
    steps_per_epoch: int | None = None
    augment: bool | None = None
    train_length: int | None = None
    val_length: int | None = None
    val_batches: int = 4
    calib_batches: int = 4
    eval_subnets: tuple[str, ...] = EVAL_SUBNETS

    def __post_init__(self):
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        try:
            size = tuple(int(v) for v in self.image_size)
        except (TypeError, ValueError):
            size = ()
        if len(size) != 2 or min(size) <= 0:
            raise ConfigError(f"image_size must be two positive integers (H, W); got "
                              f"{self.image_size!r}")
        set_("image_size", size)
        set_("eval_subnets", tuple(self.eval_subnets))
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"unknown optimizer {self.optimizer!r}; choose one of "
                              f"{', '.join(OPTIMIZERS)}")
        if self.path_loss not in PATH_LOSSES:
            raise ConfigError(f"unknown path_loss {self.path_loss!r}; choose one of "
                              f"{', '.join(PATH_LOSSES)}")
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"unknown sampler {self.sampler!r}; choose one of "
                              f"{', '.join(SAMPLERS)}")
        if self.augment is None:
            set_("augment", self.dataset not in UNAUGMENTED_DATASETS)
        if self.lr is None:
            set_("lr", DEFAULT_LR[self.optimizer])
        if self.weight_decay is None:
            set_("weight_decay", DEFAULT_WEIGHT_DECAY[self.optimizer])
        for name in ("epochs", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"{name} must be at least 1; got {getattr(self, name)!r}")
        for name in ("steps_per_epoch", "train_length", "val_length"):
            value = getattr(self, name)
            if value is not None and int(value) < 1:
                raise ConfigError(f"{name} must be at least 1 (or unset); got {value!r}")
        for name in ("val_batches", "calib_batches"):
            if int(getattr(self, name)) < 0:
                raise ConfigError(f"{name} must be >= 0; got {getattr(self, name)!r}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be positive; got {self.lr!r}")
        if not 0 <= self.warmup_fraction < 1:
            raise ConfigError(f"warmup_fraction must be in [0, 1); got {self.warmup_fraction!r}")
        if self.grad_clip < 0:
            raise ConfigError(f"grad_clip must be >= 0 (0 disables it); got {self.grad_clip!r}")
        if self.quant_spec is not None and not self.qat:
            raise ConfigError("quant_spec is only used with qat=True; drop it or enable qat")

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (tuples become lists)."""
        out = asdict(self)
        out["image_size"] = list(self.image_size)
        out["eval_subnets"] = list(self.eval_subnets)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Inverse of `to_dict`; raises `ConfigError` on unknown keys."""
        reject_unknown_keys(cls, data)
        return cls(**data)

    def replace(self, **changes: Any) -> TrainConfig:
        """A copy with `changes` applied (validated again)."""
        data = self.to_dict()
        data.update(changes)
        return TrainConfig.from_dict(data)
