"""`qanas search --bits w4w8`: (architecture, bits) searched together, flash as objective and budget."""

from __future__ import annotations

import pytest

from qanas.errors import ConfigError
from qanas.search import SearchConfig, run
from qanas.search.scorer_setup import ScorerSetup
from qanas.space import get_space
from qanas.space.bits import MixedPrecisionConfig, parse_config
from tests.support.fakes import SIZE, FakeScorer


def _setup(space, scorer):
    return ScorerSetup(scorer, space, 4, SIZE, "f" * 64, {"fake": True, "seed": 3})


@pytest.mark.slow  # plans the compiled SRAM arena of each architecture: ~3 CPU-minutes
def test_w4w8_search_explores_bits_and_bounds_flash(tmp_path):
    space = get_space("squeezenas-small")
    scorer = FakeScorer(space)
    unbounded = run(SearchConfig(supernet="unused.pt", target="host", algo="random", budget=6,
                                 out=str(tmp_path / "free"), seed=3, bits="w4w8",
                                 objectives=("miou", "flash")), scorer=_setup(space, scorer))
    records = unbounded.result.records
    assert all(isinstance(parse_config(r.arch), MixedPrecisionConfig) for r in records)
    assert unbounded.evaluation.space.slots > 0
    limit = sorted(r.flash_bytes for r in records)[2]
    bounded = run(SearchConfig(supernet="unused.pt", target="host", algo="random", budget=6,
                               out=str(tmp_path / "bounded"), seed=3, bits="w4w8",
                               flash_budget=limit, objectives=("miou", "flash")),
                  scorer=_setup(space, FakeScorer(space)))
    assert bounded.evaluation.budgets.flash_bytes == limit
    assert all(r.miou is None for r in bounded.result.records if r.flash_bytes > limit)
    assert SearchConfig.from_run_dir(tmp_path / "bounded").bits == "w4w8"


def test_w4w8_is_refused_on_ethos_u_and_with_gumbel(tmp_path):
    space = get_space("squeezenas-small")
    for target, algo, message in (("ethos-u55-128", "random", "Vela compiles int8"),
                                  ("host", "gumbel", "no bit decisions")):
        with pytest.raises(ConfigError, match=message):
            run(SearchConfig(supernet="unused.pt", target=target, algo=algo, budget=2,
                             out=str(tmp_path / "x"), bits="w4w8"),
                scorer=_setup(space, FakeScorer(space)))
    assert not (tmp_path / "x").exists()


def test_cli_flags_map_to_the_config():
    import argparse

    from qanas.cli.commands.search import COMMAND, search_config

    parser = argparse.ArgumentParser()
    COMMAND.add_arguments(parser)
    args = parser.parse_args(["--supernet", "s.pt", "--target", "host", "--budget", "3",
                              "--out", "o", "--bits", "w4w8", "--flash-budget", "65536",
                              "--objectives", "miou,flash"])
    config = search_config(args)
    assert (config.bits, config.flash_budget, config.objectives) == ("w4w8", 65536,
                                                                     ("miou", "flash"))
    assert search_config(parser.parse_args(["--supernet", "s.pt", "--target", "host",
                                            "--budget", "3", "--out", "o"])).bits == "w8"
