"""`qanas search`: outputs, resume, refusal to overwrite, clear errors (fake scorer injected)."""

from __future__ import annotations

import csv
import json

import pytest

from qanas.cli import main as cli
from qanas.search import job as search_job
from qanas.space import get_space
from tests.support.fakes import SIZE, FakeScorer


def _search(out, *extra):
    return cli.main(["search", "--supernet", "unused.pt", "--target", "host", "--budget", "6",
                     "--out", str(out), "--json", *extra])


def test_cli_writes_front_files_and_resumes(tmp_path, capsys, fake_scorer):
    out = tmp_path / "run"
    assert _search(out, "--algo", "random", "--seed", "2") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["evaluated"] == 6 and result["scored"] == 6 and result["front"]
    first = result["front"][0]
    assert {"arch", "miou", "latency", "latency_unit", "sram_bytes", "flash_bytes"} <= set(first)
    for name in ("front.json", "front.csv", "pareto.png", "archive.sqlite", "config.json"):
        assert (out / name).stat().st_size > 0
    assert (out / "pareto.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    saved = json.loads((out / "front.json").read_text())
    assert [r["arch"] for r in saved["front"]] == [r["arch"] for r in result["front"]]
    assert result["knee"] in {r["arch"] for r in result["front"]} and saved["knee"] == result["knee"]
    with open(out / "front.csv") as f:
        assert [row["arch"] for row in csv.DictReader(f)] == [r["arch"] for r in result["front"]]
    assert json.loads((out / "config.json").read_text())["seed"] == 2

    calls = len(fake_scorer.calls)
    assert _search(out, "--algo", "random", "--seed", "2", "--resume") == 0
    resumed = json.loads(capsys.readouterr().out)
    assert resumed["scored"] == 0 and resumed["cache_hits"] == 6
    assert len(fake_scorer.calls) == calls
    assert resumed["front"] == result["front"]

    # `qanas report` on a search directory: front, every archived subnet, the knee marked
    assert cli.main(["report", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert "search" in report["sections"] and not report["errors"]
    html = (out / "report.html").read_text()
    assert result["knee"] in html and "data:image/png;base64," in html


def test_cli_refuses_existing_archive_and_bad_algorithms(tmp_path, capsys, fake_scorer):
    out = tmp_path / "run"
    assert _search(out, "--algo", "random") == 0
    capsys.readouterr()
    assert _search(out, "--algo", "random") == 2
    assert "--resume" in json.loads(capsys.readouterr().out)["error"]
    assert _search(out, "--algo", "random", "--force") == 0
    capsys.readouterr()
    assert _search(tmp_path / "g", "--algo", "bogus") == 2
    assert "unknown search algorithm" in json.loads(capsys.readouterr().out)["error"]
    assert _search(tmp_path / "h", "--objectives", "miou,speed") == 2
    assert _search(tmp_path / "i", "--resume") == 2


def test_resume_under_other_settings_is_refused_naming_them(tmp_path, capsys, fake_scorer):
    out = tmp_path / "run"
    assert _search(out, "--algo", "random", "--seed", "2") == 0
    capsys.readouterr()
    calls = len(fake_scorer.calls)
    assert _search(out, "--algo", "random", "--seed", "3", "--resume") == 2
    error = json.loads(capsys.readouterr().out)["error"]
    assert "seed: 3 (archive: 2)" in error and "--allow-new-metric-set" in error
    assert "\n" not in error and len(fake_scorer.calls) == calls
    assert _search(out, "--algo", "random", "--seed", "2", "--resume",
                   "--latency-budget", "1e9") == 2
    assert "budget.latency: 1000000000.0 (archive: unset)" in json.loads(
        capsys.readouterr().out)["error"]
    assert _search(out, "--algo", "random", "--seed", "2", "--resume", "--target",
                   "cortex-m7") == 2
    assert "target: cortex-m7 (archive: host)" in json.loads(capsys.readouterr().out)["error"]
    # stated explicitly: scored under the new metric set, in the same archive
    assert _search(out, "--algo", "random", "--seed", "3", "--resume",
                   "--allow-new-metric-set") == 0
    assert json.loads(capsys.readouterr().out)["scored"] == 6
    assert _search(out, "--algo", "random", "--seed", "3", "--resume") == 0  # now the stored one
    assert json.loads(capsys.readouterr().out)["scored"] == 0
    assert _search(tmp_path / "new", "--allow-new-metric-set") == 2
    assert "only applies with --resume" in json.loads(capsys.readouterr().out)["error"]


@pytest.mark.parametrize("value", ["0", "-5", "nan", "inf"])
def test_non_positive_latency_budget_is_refused(tmp_path, capsys, fake_scorer, value):
    assert _search(tmp_path / "run", "--latency-budget", value) == 2
    error = json.loads(capsys.readouterr().out)["error"]
    assert "--latency-budget must be a positive number" in error
    assert not (tmp_path / "run").exists()


def test_image_size_below_the_total_stride_is_refused(tmp_path, capsys, monkeypatch):
    space = get_space("squeezenas-small")

    def build(args):
        size = tuple(args.image_size or SIZE)
        return search_job.ScorerSetup(FakeScorer(space), space, 4, size, "f" * 64,
                                      {"fake": True})

    monkeypatch.setattr(search_job, "build_scorer", build)
    assert _search(tmp_path / "run", "--image-size", "8", "64") == 2
    error = json.loads(capsys.readouterr().out)["error"]
    assert "--image-size 8 64 is smaller than the total stride 16x16" in error


def test_out_naming_a_file_is_a_one_line_error(tmp_path, capsys, fake_scorer):
    path = tmp_path / "results.txt"
    path.write_text("mine")
    for out in (path, path / "sub"):
        assert _search(out) == 2
        error = json.loads(capsys.readouterr().out)["error"]
        assert "is an existing file" in error or "which is an existing file" in error
        assert "\n" not in error
    assert path.read_text() == "mine"


def test_a_second_search_on_a_folder_in_use_is_refused(tmp_path, capsys, fake_scorer):
    import os

    from qanas.utils.runlock import lock_run_dir

    out = tmp_path / "run"
    with lock_run_dir(out, "search"):  # another search holds the folder
        assert _search(out, "--algo", "random") == 2
        error = json.loads(capsys.readouterr().out)["error"]
        assert f"PID {os.getpid()}" in error and "`qanas search` started" in error
        assert not (out / "archive.sqlite").exists()
    assert _search(out, "--algo", "random") == 0  # released: the folder is free again


def test_force_also_removes_a_stale_rollback_journal(tmp_path, capsys, fake_scorer):
    out = tmp_path / "run"
    assert _search(out, "--algo", "random") == 0
    # What a kill inside a commit leaves: a hot journal that would "roll back" a new archive.
    (out / "archive.sqlite-journal").write_bytes(b"\xd9\xd5\x05\xf9\x20\xa1\x63\xd7" * 64)
    assert _search(out, "--algo", "random", "--force") == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["scored"] == 6
    assert not (out / "archive.sqlite-journal").exists()
