"""`benchmarks/search_hv.py`: the hypervolume comparison it reports."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.scripts import load_script


@pytest.fixture(scope="module")
def search_hv():
    return load_script("benchmarks/search_hv.py")


def test_normalized_hypervolume_by_hand(search_hv):
    # objectives (-miou, latency, sram); sram constant, so the volume is 2-D x (1.1 - 0)
    everything = np.array([[-0.6, 10.0, 5.0], [-0.2, 2.0, 5.0], [-0.4, 6.0, 5.0],
                           [-0.3, 8.0, 5.0]])
    good = everything[:3]  # the front of everything
    worse = everything[[1, 3]]
    hv = search_hv.normalized_hypervolumes({"good": good, "worse": worse, "none": good[:0]},
                                           everything)
    # normalized: miou -0.6 -> 0, -0.2 -> 1; latency 2 -> 0, 10 -> 1; sram -> 0
    # good = {(0, 1), (1, 0), (0.5, 0.5)}: 2-D HV w.r.t. (1.1, 1.1) = 0.1*1.1 + 0.5*0.6 + 0.5*0.1
    expected_good = (0.1 * 1.1 + 0.5 * 0.6 + 0.5 * 0.1) * 1.1
    # worse = {(1, 0), (0.75, 0.75)}: 0.1*1.1 + 0.25*0.35
    expected_worse = (0.1 * 1.1 + 0.25 * 0.35) * 1.1
    assert hv["good"] == pytest.approx(expected_good)
    assert hv["worse"] == pytest.approx(expected_worse)
    assert hv["none"] == 0.0 and hv["good"] > hv["worse"]


def test_budget_default_uses_the_targets_memory(search_hv):
    args = search_hv._parser().parse_args(["--supernet", "x.pt"])
    assert args.target == "cortex-m7" and args.budget == 100
