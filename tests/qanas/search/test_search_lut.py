"""`qanas search` latency source: `--lut`, the committed table by default, `--no-lut` (fake scorer)."""

from __future__ import annotations

import json

import pytest

from qanas.cli import main as cli
from qanas.cost.lut.committed import find_lut
from qanas.cost.lut.table import build_lut
from qanas.errors import ConfigError
from qanas.search import job as search_job
from qanas.search.config import SearchConfig
from qanas.space import get_space
from tests.support.fakes import SIZE, FakeMeasurer, FakeScorer

DEMO = ("squeezenas-small", "cortex-m7", (64, 128), 6)  # the committed table's setting


def _fake_lut(path, options=None):
    lut = build_lut(get_space("squeezenas-small"), SIZE, FakeMeasurer(), 4, options, path=path)
    lut.protocol["target"] = "host"
    return lut.save(path)


def _search(tmp_path, name, target, lut):
    return cli.main(["search", "--supernet", "unused.pt", "--target", target, "--budget", "3",
                     "--algo", "random", "--out", str(tmp_path / name), "--lut", str(lut),
                     "--json"])


def test_search_uses_the_table_and_rejects_a_mismatched_one(tmp_path, capsys, fake_scorer):  # noqa: F811
    lut = _fake_lut(tmp_path / "lut.json")
    assert _search(tmp_path, "s", "host", lut) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["front"] and all(r["latency_source"] == "lut:host" for r in result["front"])
    assert all(r["latency_unit"] == "instructions" for r in result["front"])
    assert result["latency_lut"] == str(lut)
    assert _search(tmp_path, "t", "cortex-m4", lut) == 2
    error = json.loads(capsys.readouterr().out)["error"]
    assert "build a matching table" in error and "'host'" in error


def test_search_refuses_a_subnet_the_table_lacks(tmp_path, capsys, fake_scorer):  # noqa: F811
    lut = _fake_lut(tmp_path / "partial.json", ["k3e1g1", "skip"])
    assert _search(tmp_path, "p", "host", lut) == 2
    error = json.loads(capsys.readouterr().out)["error"]
    assert "no entry" in error and "qanas lut build --resume" in error


@pytest.fixture
def demo_scorer(monkeypatch):
    space, classes, size = get_space(DEMO[0]), DEMO[3], DEMO[2]

    def build(args):
        return search_job.ScorerSetup(FakeScorer(space), space, classes, size, "f" * 64,
                                      {"fake": True, "seed": args.seed})

    monkeypatch.setattr(search_job, "build_scorer", build)


def test_search_defaults_to_the_committed_table_of_its_mode(tmp_path, capsys, caplog,
                                                            demo_scorer):
    committed = find_lut(*DEMO, optimise="speed")
    assert committed is not None
    base = ["search", "--supernet", "unused.pt", "--target", DEMO[1], "--budget", "2",
            "--algo", "random", "--json"]
    assert cli.main([*base, "--out", str(tmp_path / "a"), "--optimise", "speed"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["latency_lut"] == str(committed) and result["optimise"] == "speed"
    assert all(r["latency_source"] == "lut:cortex-m7" and r["latency_unit"] == "instructions"
               for r in result["front"])
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["config"]["optimise"] == "speed"
    assert config["config"]["metric_settings"]["sram"]["optimise"] == "speed"
    assert cli.main([*base, "--out", str(tmp_path / "b"), "--no-lut", "--optimise", "speed"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["latency_lut"] is None
    assert all(r["latency_source"].startswith("analytic:") for r in result["front"])
    # the default mode is compile's (size): the speed table describes other builds
    with caplog.at_level("WARNING"):
        assert cli.main([*base, "--out", str(tmp_path / "c")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["latency_lut"] is None and result["optimise"] == "size"
    assert all(r["latency_source"].startswith("analytic:") for r in result["front"])
    assert str(committed) in caplog.text and "--optimise speed" in caplog.text


def test_search_refuses_a_table_of_another_mode(tmp_path, capsys, demo_scorer):
    committed = find_lut(*DEMO, optimise="speed")
    code = cli.main(["search", "--supernet", "unused.pt", "--target", DEMO[1], "--budget", "2",
                     "--algo", "random", "--json", "--out", str(tmp_path / "a"),
                     "--lut", str(committed)])
    assert code == 2
    error = json.loads(capsys.readouterr().out)["error"]
    assert "measures --optimise speed builds" in error and "--optimise size" in error
    with pytest.raises(ConfigError, match="'fast' is not a compiler mode; choose one of size"):
        search_job.run(SearchConfig(supernet="unused.pt", target=DEMO[1], budget=2,
                                    out=str(tmp_path / "b"), optimise="fast"))
