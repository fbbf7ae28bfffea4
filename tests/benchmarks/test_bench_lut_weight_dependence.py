"""`benchmarks/lut_weight_dependence.py`: the requantization facts it reports per layer."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.scripts import load_script


@pytest.fixture(scope="module")
def bench():
    return load_script("benchmarks/lut_weight_dependence.py")


def test_trailing_zeros(bench):
    assert [bench.trailing_zeros(v) for v in (1, 2, 12, 1419802304, 1 << 30)] == [0, 1, 2, 6,
                                                                                   30]
    assert bench.trailing_zeros(0) is None


def test_scalar_requant_reads_nested_params_and_skips_unused_parts(bench):
    resize = {"resize": {"channels": 128, "multiplier": 1419802304, "shift": -4}, "count": 3}
    assert bench.scalar_requant(resize) == {"multiplier": 1419802304, "shift": -4,
                                            "multiplier_trailing_zeros": 6}
    unused_add = {"add": {"a_multiplier": 0, "b_multiplier": 0, "right_shift": 1}}
    assert bench.scalar_requant(unused_add) == {}


def test_channel_requant_finds_multiplier_shift_pairs(bench):
    weights = np.arange(12, dtype=np.int8).reshape(3, 4)
    bias = np.array([5, -3, 1 << 30], np.int32)  # not a multiplier array: -3 < 2^30
    mult = np.array([1 << 30, 0, (1 << 31) - 1], np.int32)
    shift = np.array([-7, 0, -1], np.int32)
    facts = bench.channel_requant([weights, bias, mult, shift])
    assert facts == {"channels": [3], "wide_shift_channels": [2], "max_shift": [0],
                     "zero_multipliers": [1]}
    assert bench.channel_requant([weights, bias]) == {}
