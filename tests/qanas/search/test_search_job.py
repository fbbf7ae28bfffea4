"""`qanas.search.run(SearchConfig)`: the library job under `qanas search`, scorer passed in."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from qanas.errors import ConfigError
from qanas.search import SearchConfig, SearchRun, run
from qanas.search.scorer_setup import ScorerSetup
from qanas.space import get_space
from tests.support.fakes import SIZE, FakeScorer


def _setup(space, scorer):
    return ScorerSetup(scorer, space, 4, SIZE, "f" * 64, {"fake": True, "seed": 3})


def _config(out, **kw):
    return SearchConfig(supernet="unused.pt", target="host", algo="random", budget=5,
                        out=str(out), seed=3, **kw)


def test_run_with_a_passed_scorer_writes_the_run_folder_and_reads_back(tmp_path):
    space = get_space("squeezenas-small")
    scorer = FakeScorer(space)
    config = _config(tmp_path / "run", objectives=("miou", "sram"))
    done = run(config, scorer=_setup(space, scorer))

    assert isinstance(done, SearchRun) and done.config == config
    assert done.summary["evaluated"] == 5 == len(scorer.calls)
    assert done.knee is not None and done.summary["knee"] == done.knee.arch
    assert done.knee.arch in {r.arch for r in done.result.front}
    printed = done.to_dict()
    assert [r["arch"] for r in printed["front"]] == [r.arch for r in done.result.front]
    assert {k: v for k, v in printed.items() if k not in ("front", "files")} == done.summary
    for path in printed["files"].values():
        assert (tmp_path / "run").samefile(Path(path).parent)
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())["config"]
    assert recorded["command"] == "search" and recorded["space"] == space.name
    assert recorded["objectives"] == ["miou", "sram"] and recorded["image_size"] == list(SIZE)
    # the folder's config.json reads back as the config that made it (size resolved)
    assert SearchConfig.from_run_dir(tmp_path / "run") == dataclasses.replace(config,
                                                                              image_size=SIZE)


def test_config_round_trips_through_its_dict():
    config = _config("runs/x", image_size=(64, 128), lut="t.json", latency_budget=1e6)
    assert SearchConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_an_unknown_key_is_refused_with_the_known_ones():
    with pytest.raises(ConfigError, match="unknown keys \\['budgett'\\]; known are"):
        SearchConfig.from_dict({**_config("x").to_dict(), "budgett": 3})


def test_a_bad_value_is_refused_before_the_folder_is_made(tmp_path):
    space = get_space("squeezenas-small")
    with pytest.raises(ConfigError, match="--budget must be a positive number"):
        run(dataclasses.replace(_config(tmp_path / "run"), budget=0),
            scorer=_setup(space, FakeScorer(space)))
    assert not (tmp_path / "run").exists()
