"""`SearchConfig`: everything one search run is made of, as a typed value.

The `qanas search` flags map one to one onto its fields (``--latency-budget`` is
``latency_budget``); the run folder's ``config.json`` records it under
``"config"`` with what the run resolved (``space``, ``budgets``, ``metric_set``,
``metric_settings``, the checkpoint's ``image_size``), and `SearchConfig.from_dict`
/ `SearchConfig.from_run_dir` read it back.

Example:
    >>> from qanas.search import SearchConfig
    >>> SearchConfig(supernet="runs/sq/supernet.pt", target="host", budget=200,
    ...              out="runs/sq-search").algo
    'nsga2'
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from qanas.errors import ConfigError
from qanas.search.gumbel.distribution import GumbelConfig
from qanas.search.problem import DEFAULT_OBJECTIVES
from qanas.search.scorer_setup import ScorerConfig

DEFAULT_VAL_FRACTION = ScorerConfig.val_fraction
_GUMBEL = GumbelConfig()

OPTIMISE_MODES = ("size", "speed")
"""``qanas compile --optimise`` modes a search deploys (`compiler.pipeline.OPTIMISE`, not
imported here: it loads TVM)."""

RESOLVED_KEYS = ("command", "metric_set", "budgets", "space", "metric_settings")
"""Keys a run adds beside the fields in its config.json: read back, they are skipped."""


@dataclass(frozen=True, kw_only=True)
class SearchConfig:
    """One search run: checkpoint, target, algorithm, budget, run folder, scoring, latency.

    Attributes:
        supernet: checkpoint from `qanas train-supernet`.
        target: target name (`targets.list_targets`).
        budget: subnets to evaluate.
        out: run directory.
        algo: a name of `qanas.search.ALGORITHMS` (nsga2, random, gumbel).
        objectives: names from `qanas.search.problem.OBJECTIVES`.
        latency_budget: hard latency limit in the latency model's unit (None: none).
        flash_budget: hard weights-memory limit in bytes, below the target's (None: the
            target's weights region).
        seed: seed of the search and the scoring.
        image_size: deployment resolution (None: the checkpoint's).
        val_fraction: share of the validation set used for mIoU.
        data_root: dataset folder (None: the checkpoint's).
        resume: continue from the run folder's archive.
        force: discard an existing archive in the run folder.
        allow_new_metric_set: with `resume`, accept settings the archive was not built with.
        lut: measured latency table (None: the committed one of this setting, if any).
        no_lut: the analytic latency model even where a table is committed.
        gumbel_steps, alpha, samples, tau_start, tau_end, arch_lr, train_weights:
            the `GumbelConfig` of ``algo="gumbel"``.
        latency_source: per-choice costs of the Gumbel latency term (lut, analytic, macs;
            None: the search's latency model).
        gumbel_batch_size: images per Gumbel step (None: the checkpoint's batch size).
        bits: weight bit widths searched: ``w8`` (int8 only) or ``w4w8`` (4 or 8 bits per
            conv, `qanas.search.bits`).
        optimise: the compiler mode (``qanas compile --optimise``) the subnets are deployed
            with: their SRAM is planned, and their latency predicted, for it.
    """

    supernet: str
    target: str
    algo: str = "nsga2"
    budget: int
    out: str
    objectives: tuple[str, ...] = DEFAULT_OBJECTIVES
    latency_budget: float | None = None
    flash_budget: int | None = None
    seed: int = 0
    image_size: tuple[int, int] | None = None
    val_fraction: float = DEFAULT_VAL_FRACTION
    data_root: str | None = None
    resume: bool = False
    force: bool = False
    allow_new_metric_set: bool = False
    lut: str | None = None
    no_lut: bool = False
    gumbel_steps: int = _GUMBEL.steps
    alpha: float = _GUMBEL.alpha
    samples: int = _GUMBEL.samples
    tau_start: float = _GUMBEL.tau_start
    tau_end: float = _GUMBEL.tau_end
    arch_lr: float = _GUMBEL.arch_lr
    latency_source: str | None = None
    train_weights: bool = False
    gumbel_batch_size: int | None = None
    bits: str = "w8"
    optimise: str = "size"

    def gumbel(self) -> GumbelConfig:
        """The `GumbelConfig` of the gumbel fields (validated: `ConfigError` names the flag)."""
        return GumbelConfig(steps=self.gumbel_steps, alpha=self.alpha, tau_start=self.tau_start,
                            tau_end=self.tau_end, arch_lr=self.arch_lr,
                            train_weights=bool(self.train_weights), samples=self.samples,
                            seed=self.seed)

    def scorer_config(self) -> ScorerConfig:
        """The checkpoint and data the subnets are scored with."""
        return ScorerConfig(self.supernet, self.image_size, self.data_root, self.seed,
                            self.val_fraction)

    def to_dict(self) -> dict:
        """The fields as JSON values (tuples as lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, data: dict) -> SearchConfig:
        """The config of `to_dict` or of a run folder's config.json ``"config"``.

        Raises:
            ConfigError: a key that is neither a field nor one a run records beside them.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names - set(RESOLVED_KEYS))
        if unknown:
            raise ConfigError(f"search config: unknown keys {unknown}; known are "
                              f"{sorted(names)}")
        values = {k: v for k, v in data.items() if k in names}
        if values.get("objectives") is not None:
            values["objectives"] = tuple(values["objectives"])
        if values.get("image_size") is not None:
            values["image_size"] = tuple(int(v) for v in values["image_size"])
        return cls(**values)

    @classmethod
    def from_run_dir(cls, run_dir: str | Path) -> SearchConfig:
        """The config a search run folder records in its config.json."""
        meta = json.loads((Path(run_dir) / "config.json").read_text())
        return cls.from_dict(meta["config"])
