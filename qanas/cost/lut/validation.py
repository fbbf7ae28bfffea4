"""Validation of a per-block latency table: predicted vs measured end to end on held-out subnets.

Held-out subnets are drawn at random from the table's options, never one of its
references. Each is measured end to end on the table's seeded images (the same
protocol as the fixed part) and compared with `LUTLatencyModel`'s prediction:
MAPE, share within ±10 %, worst error and Kendall τ.

Example:
    >>> subnets = held_out_subnets(space, lut, n=20, seed=1)  # doctest: +SKIP
    >>> validate_lut(lut, space, measurer, subnets).to_dict()  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from qanas.cost.lut.measure import Measurer, random_model_inputs
from qanas.cost.lut.table import LatencyLUT, LUTLatencyModel, measure_subnet, seeded_supernet
from qanas.errors import ConfigError
from qanas.space.base import SearchSpace, SubnetConfig

WITHIN = 10.0  # percent


@dataclass(frozen=True)
class LUTValidation:
    """Predicted vs measured end-to-end latency on held-out subnets.

    Attributes:
        n: subnets measured.
        mape: mean absolute percentage error, in percent.
        within_10: share of subnets whose prediction is within ±10 % of the measurement.
        max_ape: worst absolute percentage error, in percent.
        kendall_tau: rank agreement of predicted and measured latency.
        rows: per subnet: arch, predicted, measured, error in percent.
        unit: the table's unit.
    """

    n: int
    mape: float
    within_10: float
    max_ape: float
    kendall_tau: float | None
    rows: tuple[dict, ...]
    unit: str

    def to_dict(self) -> dict:
        """JSON-friendly form."""
        return {"n": self.n, "mape": self.mape, "within_10": self.within_10,
                "max_ape": self.max_ape, "kendall_tau": self.kendall_tau,
                "unit": self.unit, "rows": list(self.rows)}


def validation_stats(archs: Sequence[str], predicted: Sequence[float],
                     measured: Sequence[float], unit: str = "") -> LUTValidation:
    """MAPE, share within ±10 %, worst error and Kendall τ of predictions vs measurements.

    Raises:
        ConfigError: mismatched lengths, no subnets, or a non-positive measurement.
    """
    p, m = np.asarray(predicted, dtype=float), np.asarray(measured, dtype=float)
    if p.shape != m.shape or len(p) != len(archs) or len(p) == 0:
        raise ConfigError(f"validation needs as many predictions as measurements (> 0), got "
                          f"{len(p)} and {len(m)}")
    if np.any(m <= 0):
        raise ConfigError("a measured latency is <= 0; the runner's report is broken")
    ape = np.abs(p - m) / m * 100.0
    tau = None
    if len(p) >= 2:
        from qanas.score.rankcorr import rank_correlation

        t = rank_correlation(p, m, ks=()).kendall_tau
        tau = None if np.isnan(t) else t
    rows = tuple({"arch": a, "predicted": float(pp), "measured": float(mm),
                  "error_pct": float((pp - mm) / mm * 100.0)}
                 for a, pp, mm in zip(archs, p, m, strict=True))
    return LUTValidation(len(p), float(ape.mean()), float(np.mean(ape <= WITHIN)),
                         float(ape.max()), tau, rows, unit)


def held_out_subnets(space: SearchSpace, lut: LatencyLUT, n: int, seed: int) -> list[SubnetConfig]:
    """`n` distinct random subnets using only the table's options, never one of its references.

    Raises:
        ConfigError: `n` < 1, or fewer than `n` distinct subnets could be drawn.
    """
    if n < 1:
        raise ConfigError(f"--n must be a positive number of held-out subnets, got {n}")
    options = lut.protocol.get("options") or lut.options()
    all_options = space.decisions[0].options
    allowed = [all_options.index(o) for o in options]
    rng = np.random.default_rng(seed)
    references = {r["reference"] for r in lut.fixed_info.get("references", [])}
    out: dict[str, SubnetConfig] = {}
    for _ in range(100 * n):
        if len(out) >= n:
            break
        cfg = space.decode([allowed[int(rng.integers(len(allowed)))] for _ in space.decisions])
        if cfg.to_str() not in references:
            out.setdefault(cfg.to_str(), cfg)
    if len(out) < n:
        raise ConfigError(f"only {len(out)} distinct held-out subnets can be drawn from "
                          f"options {options}; ask for fewer with --n")
    return list(out.values())


def validate_lut(lut: LatencyLUT, space: SearchSpace, measurer: Measurer,
                 subnets: Sequence[SubnetConfig],
                 log: Callable[[str], None] | None = None) -> LUTValidation:
    """Measures each subnet end to end (the table's seed and images) against the prediction."""
    model = LUTLatencyModel(lut, space)
    seed = int(lut.protocol.get("seed", 0))
    image = random_model_inputs((1, 3, *lut.image_size), seed)
    supernet = seeded_supernet(space, lut.num_classes, seed)
    archs, pred, meas = [], [], []
    for i, cfg in enumerate(subnets):
        predicted = model.predict(cfg).value  # refuses a missing entry before measuring
        value = measure_subnet(space, cfg, image, measurer, lut.num_classes, seed, supernet)
        archs.append(cfg.to_str())
        pred.append(predicted)
        meas.append(value)
        if log:
            log(f"held-out {i + 1}/{len(subnets)}: predicted {predicted:.6g}, measured "
                f"{value:.6g} ({(predicted - value) / value * 100:+.2f} %)")
    return validation_stats(archs, pred, meas, lut.unit)
