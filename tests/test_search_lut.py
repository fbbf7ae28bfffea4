"""`qanas search --lut`: the measured table replaces the analytic latency (fake scorer)."""

from __future__ import annotations

import json

import pytest
from test_lut import FakeMeasurer
from test_search_algorithms import SIZE
from test_search_cli import fake_scorer  # noqa: F401 - fixture

from qanas.cli import main as cli
from qanas.search.lut import build_lut
from qanas.space import get_space


@pytest.fixture
def fake_lut(tmp_path):
    lut = build_lut(get_space("squeezenas-small"), SIZE, FakeMeasurer(), 4, None,
                    path=tmp_path / "lut.json")
    lut.protocol["target"] = "host"
    return lut.save(tmp_path / "lut.json")


def test_search_uses_the_table_and_rejects_a_mismatched_one(tmp_path, capsys, fake_scorer,  # noqa: F811
                                                            fake_lut):
    code = cli.main(["search", "--supernet", "unused.pt", "--target", "host", "--budget", "3",
                     "--algo", "random", "--out", str(tmp_path / "s"), "--lut", str(fake_lut),
                     "--json"])
    result = json.loads(capsys.readouterr().out)
    assert code == 0, result
    assert result["front"] and all(r["latency_source"] == "lut:host" for r in result["front"])
    assert all(r["latency_unit"] == "instructions" for r in result["front"])
    code = cli.main(["search", "--supernet", "unused.pt", "--target", "cortex-m4", "--budget",
                     "3", "--out", str(tmp_path / "t"), "--lut", str(fake_lut), "--json"])
    assert code == 2 and "build a matching table" in json.loads(capsys.readouterr().out)["error"]
