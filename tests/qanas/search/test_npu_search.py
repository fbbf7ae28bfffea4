"""`qanas search --target ethos-u55-128`: Vela latency and memory per subnet, cached in the
archive, and the NPU pruning before the search (real export + Vela, toy space; the
scorer is a stand-in for the trained supernet's mIoU, which is not under test here)."""

from __future__ import annotations

import json

import pytest

from qanas.cli import main as cli
from qanas.search import job as search_job
from qanas.search.archive import EvalArchive
from qanas.space import get_space
from tests.support.npu_toy_space import register_npu_toy

pytestmark = pytest.mark.slow
SIZE = (16, 16)


class MacsScorer:
    """mIoU stand-in: grows with the subnet's MACs (deterministic)."""

    def __init__(self, space):
        self.space, self.calls = space, []

    def score(self, cfg):
        assert "x4" not in cfg.to_str(), "a pruned choice reached the scorer"
        self.calls.append(cfg.to_str())
        macs = sum(s.macs for s in self.space.layer_specs(cfg, SIZE, 4))
        return {"miou": macs / 1e6, "miou_fp32": macs / 1e6}


@pytest.fixture
def toy_scorer(monkeypatch):
    register_npu_toy()
    space = get_space("npu-toy")
    scorer = MacsScorer(space)

    def build(args):
        return search_job.ScorerSetup(scorer, space, 4, SIZE, "a" * 64,
                                      {"fake": True, "seed": args.seed})

    monkeypatch.setattr(search_job, "build_scorer", build)
    return scorer


def _search(out, *extra):
    return cli.main(["search", "--supernet", "unused.pt", "--target", "ethos-u55-128",
                     "--budget", "2", "--algo", "random", "--out", str(out), "--json", *extra])


def test_npu_search_uses_vela_and_reports_pruned_choices(tmp_path, capsys, toy_scorer):
    out = tmp_path / "run"
    assert _search(out) == 0
    result = json.loads(capsys.readouterr().out)
    pruning = result["npu_pruning"]
    assert [(r["decision"], r["option"]) for r in pruning["removed"]] == [("up", "x4")]
    assert pruning["removed"][0]["cpu_ops"][0]["op"] == "ResizeBilinear"
    assert pruning["cached"] is False and result["evaluated"] == 2
    assert all("x4" not in row["arch"] for row in result["front"])
    archive = EvalArchive(out / "archive.sqlite")
    try:
        records = archive.all()
    finally:
        archive.close()
    assert len(records) == 2
    for rec in records:
        assert rec.latency_unit == "cycles" and rec.latency_source.startswith("estimate:vela-")
        assert rec.latency > 0 and rec.sram_bytes > 0 and rec.flash_bytes > 0
        assert rec.target == "ethos-u55-128"
    vela_logs = list((out / "npu" / "subnets").glob("*/vela/vela.log"))
    assert len(vela_logs) == 2

    calls = len(toy_scorer.calls)
    assert _search(out, "--resume") == 0
    resumed = json.loads(capsys.readouterr().out)
    assert resumed["npu_pruning"]["cached"] is True and resumed["cache_hits"] == 2
    assert len(toy_scorer.calls) == calls and resumed["front"] == result["front"]

