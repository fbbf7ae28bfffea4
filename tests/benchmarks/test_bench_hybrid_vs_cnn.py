"""`benchmarks/hybrid_vs_cnn.py`: the equal-latency comparison, hypervolumes and goal."""

from __future__ import annotations

import dataclasses

import pytest

from qanas.demo.config import DemoConfig
from tests.support.scripts import load_script

M = 1e6


@pytest.fixture(scope="module")
def bench():
    return load_script("benchmarks/hybrid_vs_cnn.py")


def _row(arch, miou, latency, sram=1000, feasible=True, unit="instructions"):
    return {"arch": arch, "miou": miou, "latency": {"value": latency, "unit": unit,
                                                    "source": "analytic"},
            "sram_bytes": sram, "feasible": feasible}


def _results(front, extra=(), deployed=0.3, fake=0.3):
    """A demo results.json with `front` (arch, miou, latency) and `extra` evaluated rows."""
    rows = [_row(*p) for p in front]
    return {
        "run_dir": "runs/x", "seconds": 10.0, "stages": [{"stage": "NSGA-II search", "seconds": 5}],
        "search": {"front": rows, "evaluated": rows + [_row(*p) for p in extra],
                   "latency_model": {"source": "analytic"}},
        "lut_validation": {"target": "cortex-m55", "source": "analytic", "unit": "instructions",
                           "measured_unit": "instructions", "comparable": True, "mape": 5.0,
                           "max_ape": 5.0,
                           "kendall_tau": None,
                           "rows": [{"arch": front[0][0], "predicted": front[0][2],
                                     "measured": front[0][2] / 1.05, "error_pct": 5.0}]},
        "chosen": {"arch": front[0][0], "knee": True, "macs": 1, "miou_int8": front[0][1],
                   "miou_int8_search": front[0][1], "latency": {"value": front[0][2]},
                   "arena_bytes": 64, "weights_bytes": 128},
        "fidelity": {"images": 8, "miou_deployed_int8": deployed, "miou_fake_quant": fake,
                     "bit_exact_fraction": 1.0, "bit_exact_fraction_integer_reference": 1.0},
        "firmware": [{"target": "cortex-m55", "fits": True, "latency": [12345],
                      "unit": "instructions", "flash_bytes": 99, "sram_bytes": 64,
                      "outputs_match_host": True, "repeatable": True}],
    }


HYBRID = [("h1", 0.30, 2 * M), ("h2", 0.40, 5 * M)]
CNN = [("c1", 0.25, 1 * M), ("c2", 0.35, 3 * M), ("c3", 0.38, 6 * M)]
CONFIGS = {"hybrid": DemoConfig(space="efficient-topformer", target="cortex-m55", epochs=2),
           "cnn": DemoConfig(space="squeezenas-small", target="cortex-m55", epochs=2)}


@pytest.fixture
def report(bench):
    # an infeasible subnet better than all: it must not stretch the normalisation
    results = {"hybrid": _results(HYBRID, extra=[("x", 0.9, 0.5 * M, 1000, False)],
                                  deployed=0.300, fake=0.304),
               "cnn": _results(CNN, deployed=0.310, fake=0.300)}
    return bench.compare(results, CONFIGS)


def test_best_mIoU_at_equal_latency(report):
    rows = report["equal_latency"]
    assert [r["latency"] for r in rows] == [1 * M, 2 * M, 3 * M, 5 * M, 6 * M]
    hybrid = [None if r["hybrid"] is None else r["hybrid"]["miou"] for r in rows]
    cnn = [r["cnn"]["miou"] for r in rows]
    assert hybrid == [None, 0.30, 0.30, 0.40, 0.40]
    assert cnn == [0.25, 0.25, 0.35, 0.35, 0.38]
    assert [r["winner"] for r in rows] == ["cnn", "hybrid", "cnn", "hybrid", "hybrid"]
    assert [r["margin"] for r in rows] == pytest.approx([None, 0.05, 0.05, 0.05, 0.02])
    assert rows[3]["hybrid"]["arch"] == "h2" and rows[3]["cnn"]["latency"] == 3 * M
    assert [(r["winner"], r["from_latency"], r["to_latency"], r["points"])
            for r in report["winner_ranges"]] == [
        ("cnn", 1 * M, 1 * M, 1), ("hybrid", 2 * M, 2 * M, 1), ("cnn", 3 * M, 3 * M, 1),
        ("hybrid", 5 * M, 6 * M, 2)]
    assert report["winner_ranges"][0]["margin"] is None
    assert report["winner_ranges"][3]["margin"] == pytest.approx([0.02, 0.05])


def test_equal_mIoU_is_a_tie(bench):
    rows = bench.equal_latency({"a": [{"arch": "a", "miou": 0.5, "latency": 1.0,
                                       "sram_bytes": 1}],
                                "b": [{"arch": "b", "miou": 0.5, "latency": 1.0,
                                       "sram_bytes": 2}]})
    assert [r["winner"] for r in rows] == ["tie"]


def test_hypervolume_by_hand(report):
    # normalised over the feasible subnets: -mIoU in [-0.40, -0.25], latency in [1, 6] M.
    # hybrid (2/3, 0.2), (0, 0.8): 13/30 * 0.9 + 1.1 * 0.3 - 13/30 * 0.3 = 0.59
    # cnn (1, 0), (1/3, 0.4), (2/15, 1): 0.1 * 0.4 + (1.1 - 1/3) * 0.6 + (1.1 - 2/15) * 0.1
    hv = report["hypervolume"]["miou_latency"]
    assert hv["hybrid"] == pytest.approx(0.59)
    assert hv["cnn"] == pytest.approx(0.04 + 0.46 + 0.9666667 * 0.1)
    # SRAM is the same everywhere: normalised to 0, the volume is 1.1 times the 2-D one
    hv3 = report["hypervolume"]["miou_latency_sram"]
    assert hv3["hybrid"] == pytest.approx(1.1 * 0.59)


def test_deployment_and_goal(report):
    hybrid, cnn = report["deployed"]["hybrid"], report["deployed"]["cnn"]
    assert hybrid["fidelity"]["gap_pp"] == pytest.approx(0.4)
    assert cnn["fidelity"]["gap_pp"] == pytest.approx(1.0)
    assert report["goal"]["met"] == {"hybrid": True, "cnn": False}
    assert hybrid["firmware"]["latency"] == 12345 and hybrid["firmware"]["outputs_match_host"]
    assert report["latency_check"]["cnn"]["rows"][0]["miou"] == 0.25
    assert report["setting"]["departures_from_demo_defaults"] == {
        "epochs": {"run": 2, "demo_default": 4}}
    assert report["fronts"]["cnn"]["best_miou"] == 0.38


def test_tables_name_the_winners(bench, report):
    table = bench.format_table(report)
    assert "hybrid 5.00–6.00 M" in table and "0.40 pp, goal met" in table
    markdown = bench.format_markdown(report).splitlines()
    assert "| 3.00 | 0.3000 (2.00) | 0.3500 (3.00) | squeezenas-small |" in markdown
    assert "| hypervolume (mIoU, latency) | 0.590 | 0.597 |" in markdown


def test_runs_of_different_settings_are_refused(bench):
    results = {"hybrid": _results(HYBRID), "cnn": _results(CNN)}
    configs = {**CONFIGS, "cnn": dataclasses.replace(CONFIGS["cnn"], budget=7)}
    with pytest.raises(ValueError, match="budget"):
        bench.compare(results, configs)


def test_latency_units_must_agree(bench):
    cnn = _results(CNN)
    for row in cnn["search"]["front"]:
        row["latency"]["unit"] = "cycles"
    with pytest.raises(ValueError, match="different units"):
        bench.compare({"hybrid": _results(HYBRID), "cnn": cnn}, CONFIGS)


def test_reprice_prices_every_subnet_with_todays_model_and_recomputes_the_front(bench):
    """`--reprice`: every evaluated subnet, the latency check and the chosen subnet are
    priced by the analytic model of the run's target, classes and mode, and the front is
    the feasible subnets no other one dominates in (mIoU, latency, SRAM)."""
    from qanas.cost.hardware import AnalyticLatencyModel
    from qanas.space import get_space
    from targets import get_target

    space = get_space("squeezenas-small")
    lo, hi = space.resolve("min").to_str(), space.resolve("max").to_str()
    # the old prices put max first; today's model prices max far above min
    results = _results([(hi, 0.50, 1 * M), (lo, 0.40, 2 * M)])
    config = DemoConfig(space="squeezenas-small", target="cortex-m55", optimise="speed")
    out = bench.repriced(results, config)

    model = AnalyticLatencyModel(space, get_target("cortex-m55"), (64, 128), 6,
                                 optimise="speed")
    price = {a: model.predict(space.resolve(a)).value for a in (lo, hi)}
    assert price[hi] > price[lo]
    assert {r["arch"]: r["latency"]["value"] for r in out["search"]["evaluated"]} == \
        pytest.approx(price)
    # both stay on the front: min is faster, max more accurate
    assert sorted(r["arch"] for r in out["search"]["front"]) == sorted([lo, hi])
    assert out["chosen"]["latency"]["value"] == pytest.approx(price[hi])
    (row,) = out["lut_validation"]["rows"]
    assert row["predicted"] == pytest.approx(price[hi])
    assert row["error_pct"] == pytest.approx((price[hi] - row["measured"]) / row["measured"] * 100)
    assert "re-priced" in out["search"]["latency_model"]["source"]
    assert results["search"]["evaluated"][0]["latency"]["value"] == 1 * M  # input untouched

    # a subnet slower and less accurate than another drops off the front
    results["search"]["evaluated"][0]["miou"] = 0.30
    out = bench.repriced(results, config)
    assert [r["arch"] for r in out["search"]["front"]] == [lo]
