"""Picking one subnet from a Pareto front: the knee.

The knee is the front point with the best worst-case trade-off: objectives are
normalised to [0, 1] over the front (0 = the front's best value, 1 = its worst)
and the point minimising pymoo's achievement scalarizing function with equal
weights (``max_i f_i``, `pymoo.decomposition.asf.ASF`) is chosen. Moving away from
it along the front buys one objective only by giving up more of another. Ties are
broken by quantized mIoU, then by the architecture string, so the choice is
deterministic.

Example:
    >>> knee = knee_point(result.front, evaluation, result.objectives)  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pymoo.decomposition.asf import ASF

from qanas.errors import ConfigError
from qanas.search.archive import EvalRecord


def normalized_objectives(F: np.ndarray) -> np.ndarray:
    """``F`` (rows: points, columns: minimised objectives) scaled to [0, 1] per column.

    A column where every point is equal becomes 0 (it does not separate the points).
    """
    F = np.asarray(F, dtype=float)
    ideal, nadir = F.min(axis=0), F.max(axis=0)
    span = np.where(nadir > ideal, nadir - ideal, 1.0)
    return (F - ideal) / span


def knee_index(F: np.ndarray) -> int:
    """Row of ``F`` (minimised objectives of a non-dominated set) at the knee."""
    F = np.asarray(F, dtype=float)
    if F.ndim != 2 or len(F) == 0:
        raise ConfigError("the front is empty: no subnet met the target's budgets; relax the "
                          "budgets (another target, a smaller --image-size) or raise --budget")
    normalized = normalized_objectives(F)
    weights = np.full(F.shape[1], 1.0 / F.shape[1])
    asf = ASF().do(normalized, weights, utopian_point=np.zeros(F.shape[1])).reshape(-1)
    best = np.flatnonzero(np.isclose(asf, asf.min()))
    # Ties: the first objective (quantized mIoU, minimised as -mIoU) decides.
    return int(best[np.argmin(F[best, 0])])


def knee_point(front: Sequence[EvalRecord], evaluation, objectives: Sequence[str]) -> EvalRecord:
    """The knee record of `front` under `objectives` (see the module docstring).

    Args:
        front: non-dominated, feasible records (`SearchResult.front`).
        evaluation: the `SubnetEvaluation` that produced them (maps records to objectives).
        objectives: objective names, as the search used them.
    """
    ordered = sorted(front, key=lambda r: r.arch)
    if not ordered:
        return ordered[knee_index(np.empty((0, len(objectives))))]
    F = np.stack([evaluation.objectives(r, objectives) for r in ordered])
    return ordered[knee_index(F)]
