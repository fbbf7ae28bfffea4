"""`RankCorrConfig`: everything one rank-correlation study is made of, as a typed value.

The `qanas rankcorr` flags map one to one onto its fields (``--top-k`` is ``top_k``,
``--data`` is ``data``); the run folder's ``config.json`` records them under ``"config"``
beside ``"command"``, and `RankCorrConfig.from_dict` / `RankCorrConfig.from_run_dir` read
them back. The standalone recipe (the fields from ``epochs`` on) is `qanas train`'s.

Example:
    >>> from qanas.rankcorr import RankCorrConfig
    >>> RankCorrConfig(supernet="runs/fair/supernet.pt", out="runs/rankcorr", n=6).pool_size
    18
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from qanas.errors import ConfigError
from qanas.train.standalone import StandaloneConfig
from qanas.utils.records import reject_unknown_keys

_RECIPE = StandaloneConfig(arch="")
"""`qanas train`'s defaults, which the standalone recipe fields share."""
SELECTIONS = ("spread", "pareto")
INITS = ("scratch", "supernet")
RECORDED_KEYS = ("command",)
"""Keys a run records beside the fields in its config.json: read back, they are skipped."""


@dataclass(frozen=True, kw_only=True)
class RankCorrConfig:
    """One study: the supernets, the subnets picked, how they are trained standalone.

    Attributes:
        supernet: checkpoint of `qanas train-supernet` whose ranking is tested.
        compare: more supernets of the same space scoring the same subnets.
        n: subnets trained standalone (at least 2).
        select: ``spread`` (n subnets evenly over the Pareto layers) or ``pareto`` (the
            seed network, (n-1)/2 Pareto-optimal and (n-1)/2 Pareto-worse subnets).
        bootstrap: bootstrap resamples of the 95 % intervals of tau and rho (0: none).
        pool: random candidates scored (None: 3 x n).
        target: target of the latency axis of the Pareto layers.
        top_k: top-k overlap sizes.
        init: standalone start, ``scratch`` or ``supernet`` (inherited weights).
        qat: standalone QAT (False: int8 is the PTQ of the float result).
        standalone_seeds: train every subnet once per seed (None: `seed` only).
        val_fraction: share of the val split for the supernet scores.
        epochs ... val_batches, augment: the standalone recipe (`qanas train`'s flags;
            ``data`` is its dataset name).
        seed: seeds the pool, the bootstrap, the scoring data and the standalone runs.
        out: run directory.
    """

    supernet: str
    compare: tuple[str, ...] | None = None
    n: int = 12
    select: str = "spread"
    bootstrap: int = 2000
    pool: int | None = None
    target: str = "cortex-m4"
    top_k: tuple[int, ...] = (3, 5)
    init: str = "scratch"
    qat: bool = True
    standalone_seeds: tuple[int, ...] | None = None
    val_fraction: float = 1.0
    epochs: int = _RECIPE.epochs
    qat_epochs: int | None = _RECIPE.qat_epochs
    qat_lr_scale: float = _RECIPE.qat_lr_scale
    batch_size: int = _RECIPE.batch_size
    lr: float | None = _RECIPE.lr
    optimizer: str = _RECIPE.optimizer
    weight_decay: float | None = _RECIPE.weight_decay
    data: str | None = _RECIPE.dataset
    data_root: str | None = _RECIPE.data_root
    image_size: tuple[int, int] | None = _RECIPE.image_size
    steps_per_epoch: int | None = _RECIPE.steps_per_epoch
    train_length: int | None = _RECIPE.train_length
    val_length: int | None = _RECIPE.val_length
    val_batches: int | None = _RECIPE.val_batches
    calib_batches: int = _RECIPE.calib_batches
    augment: bool = _RECIPE.augment
    seed: int = _RECIPE.seed
    out: str

    def __post_init__(self):
        if self.n < 2:
            raise ConfigError(f"--n must be at least 2 subnets to correlate, got {self.n}")
        if self.select not in SELECTIONS:
            raise ConfigError(f"select must be one of {SELECTIONS}; got {self.select!r}")
        if self.init not in INITS:
            raise ConfigError(f"init must be one of {INITS}; got {self.init!r}")
        for name in ("compare", "top_k", "standalone_seeds", "image_size"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, tuple):
                object.__setattr__(self, name, tuple(value))

    @property
    def pool_size(self) -> int:
        """Random candidates scored: `pool`, else 3 x `n`."""
        return self.pool or 3 * self.n

    def seeds(self) -> list[int]:
        """The standalone seeds: `standalone_seeds` (duplicates dropped), else `seed`."""
        return list(dict.fromkeys(self.standalone_seeds or [self.seed]))

    def standalone_config(self, arch: str, seed: int | None = None) -> StandaloneConfig:
        """The `StandaloneConfig` that trains `arch` with this recipe (`seed`: else `seed`)."""
        return StandaloneConfig(
            arch=arch, init=self.init, supernet=self.supernet, dataset=self.data,
            data_root=self.data_root, image_size=self.image_size, epochs=self.epochs,
            qat=self.qat, qat_epochs=self.qat_epochs, qat_lr_scale=self.qat_lr_scale,
            batch_size=self.batch_size, lr=self.lr, optimizer=self.optimizer,
            weight_decay=self.weight_decay, seed=self.seed if seed is None else seed,
            steps_per_epoch=self.steps_per_epoch, train_length=self.train_length,
            val_length=self.val_length, augment=self.augment,
            calib_batches=self.calib_batches, val_batches=self.val_batches)

    def to_dict(self) -> dict:
        """The fields as JSON values (tuples as lists)."""
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, data: dict) -> RankCorrConfig:
        """The config of `to_dict` or of a run folder's config.json ``"config"``.

        Raises:
            ConfigError: a key that is neither a field nor one a run records beside them.
        """
        values = {k: v for k, v in data.items() if k not in RECORDED_KEYS}
        reject_unknown_keys(cls, values)
        return cls(**values)

    @classmethod
    def from_run_dir(cls, run_dir: str | Path) -> RankCorrConfig:
        """The config a rankcorr run folder records in its config.json."""
        return cls.from_dict(json.loads((Path(run_dir) / "config.json").read_text())["config"])

