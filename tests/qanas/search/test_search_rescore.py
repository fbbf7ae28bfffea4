"""An archived subnet left unscored over a tighter budget is scored when it now fits.

`SubnetEvaluation` archives an over-budget subnet without scoring it (mIoU None). A later
evaluation under looser budgets (a resumed search that accepted new settings, the
library API with other budgets) must not serve that row as mIoU 0: it scores the subnet
and replaces the row. A row still over budget stays a cache hit.
"""

from __future__ import annotations

from types import SimpleNamespace

from qanas.cost.hardware import HardwareProfile, Latency
from qanas.search.archive import EvalArchive
from qanas.search.problem import Budgets, SubnetEvaluation
from qanas.space import get_space


class FixedHardware:
    """Test-only cost model: every subnet costs 5,000 B of SRAM."""

    target = SimpleNamespace(name="host")

    def profile(self, cfg) -> HardwareProfile:
        return HardwareProfile(1000, 100, 100, 5000, 5000, Latency(1.0, "cycles", "fixed"))


class CountingScorer:
    """Test-only scorer: a constant mIoU, counting its calls."""

    def __init__(self):
        self.calls = 0

    def score(self, cfg):
        self.calls += 1
        return {"miou": 0.5, "miou_fp32": 0.6}


def _evaluation(archive, budgets, scorer):
    return SubnetEvaluation(get_space("squeezenas-small"), FixedHardware(), scorer, archive,
                            "m", budgets)


def test_unscored_row_is_scored_once_it_fits(tmp_path):
    cfg = get_space("squeezenas-small").resolve("min")
    scorer = CountingScorer()
    with EvalArchive(tmp_path / "archive.sqlite") as archive:
        tight = _evaluation(archive, Budgets(sram_bytes=4000), scorer)
        assert tight(cfg).miou is None and scorer.calls == 0
        assert tight(cfg).miou is None and tight.cache_hits == 1  # still over: a hit
        loose = _evaluation(archive, Budgets(sram_bytes=8000), scorer)
        record = loose(cfg)
        assert record.miou == 0.5 and scorer.calls == 1 and loose.cache_hits == 0
        assert archive.get(cfg.to_str(), "host", "m").miou == 0.5
        assert loose(cfg).miou == 0.5 and scorer.calls == 1 and loose.cache_hits == 1


def test_evaluate_many_rescores_the_same_rows(tmp_path):
    from qanas.search.sharding import evaluate_many

    space = get_space("squeezenas-small")
    cfgs = [space.resolve("min"), space.resolve("max")]
    scorer = CountingScorer()
    with EvalArchive(tmp_path / "archive.sqlite") as archive:
        evaluate_many(_evaluation(archive, Budgets(sram_bytes=4000), scorer), cfgs)
        assert scorer.calls == 0
        records = evaluate_many(_evaluation(archive, Budgets(sram_bytes=8000), scorer), cfgs)
        assert [r.miou for r in records] == [0.5, 0.5] and scorer.calls == 2
