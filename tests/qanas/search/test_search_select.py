"""The knee of a Pareto front: balanced trade-off, deterministic, clear error when empty."""

from __future__ import annotations

import numpy as np
import pytest

from qanas.errors import ConfigError
from qanas.search.select import knee_index, normalized_objectives


def test_knee_is_the_balanced_point_not_an_extreme():
    # (-mIoU, latency): the middle point gives up little mIoU for a large latency gain
    F = np.array([[-0.60, 100.0], [-0.57, 40.0], [-0.30, 35.0]])
    assert knee_index(F) == 1


def test_knee_ignores_objective_scale_and_constant_columns():
    F = np.array([[-0.60, 1e9, 5.0], [-0.57, 4e8, 5.0], [-0.30, 3.5e8, 5.0]])
    assert knee_index(F) == 1
    assert np.all(normalized_objectives(F)[:, 2] == 0)


def test_knee_ties_go_to_the_better_miou():
    F = np.array([[-0.5, 2.0], [-0.6, 2.0]])  # identical latency: the second has more mIoU
    assert knee_index(F) == 1
    assert knee_index(F[:1]) == 0


def test_empty_front_is_a_clear_error():
    with pytest.raises(ConfigError, match="no subnet met the target's budgets"):
        knee_index(np.empty((0, 2)))
