"""`qanas rankcorr` and `qanas train`: subnet selection, and a slow end-to-end run on a tiny config."""

from __future__ import annotations

import json

import numpy as np
import pytest

from qanas.cli.main import main
from qanas.errors import ConfigError
from qanas.score.rankcorr import pareto_split_selection, spread_selection

TINY_DATA = ["--image-size", "16", "32", "--batch-size", "4", "--steps-per-epoch", "2",
             "--train-length", "8", "--val-length", "4"]


def test_spread_selection_covers_front_and_worse_layers():
    # a: front, fast; b: front, slow; c: dominated by a; d: dominated by b; e: worst
    archs = ["a", "b", "c", "d", "e"]
    miou = [0.5, 0.9, 0.4, 0.8, 0.1]
    lat = [1.0, 5.0, 2.0, 6.0, 9.0]
    assert spread_selection(archs, miou, lat, 5) == ["a", "b", "c", "d", "e"]
    two = spread_selection(archs, miou, lat, 2)
    assert two[0] == "a" and two[1] == "e"  # fastest of the front, and the worst layer
    three = spread_selection(archs, miou, lat, 3, always=["d"])
    assert three[0] == "d" and len(set(three)) == 3
    with pytest.raises(ConfigError, match="raise --pool"):
        spread_selection(archs, miou, lat, 6)


def test_pareto_split_takes_the_front_and_the_most_dominated():
    # layers: {a, b} (front), {c, d}, {e}; inside a layer by latency
    archs = ["a", "b", "c", "d", "e"]
    miou = [0.5, 0.9, 0.4, 0.8, 0.1]
    lat = [1.0, 5.0, 2.0, 6.0, 9.0]
    assert pareto_split_selection(archs, miou, lat, 2, 2) == ["a", "b", "d", "e"]
    assert pareto_split_selection(archs, miou, lat, 2, 2, always=["a"]) == ["a", "b", "c",
                                                                            "d", "e"]
    assert pareto_split_selection(archs, miou, lat, 1, 1, always=["e"]) == ["e", "a", "d"]
    with pytest.raises(ConfigError, match="raise --pool"):
        pareto_split_selection(archs, miou, lat, 3, 3)


def test_spread_selection_handles_unscored_candidates():
    picked = spread_selection(["a", "b", "c"], [0.2, np.nan, 0.3], [1.0, 0.5, 2.0], 3)
    assert sorted(picked) == ["a", "b", "c"] and picked[-1] == "b"  # NaN counts as worst


def _cli(capsys, *argv) -> tuple[int, dict]:
    code = main([*argv, "--json"])
    return code, json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.slow
def test_train_and_rankcorr_end_to_end(tmp_path, capsys):
    runs = {}
    for sampler in ("fairnas", "spos"):
        code, res = _cli(capsys, "train-supernet", "--space", "squeezenas-small", "--data",
                         "synthetic", *TINY_DATA, "--epochs", "1", "--val-batches", "1",
                         "--calib-batches", "1", "--sampler", sampler,
                         "--out", str(tmp_path / sampler))
        assert code == 0, res
        runs[sampler] = res["checkpoint"]

    code, res = _cli(capsys, "train", "--arch", "seed", "--supernet", runs["fairnas"],
                     "--qat", "--epochs", "1", "--qat-epochs", "1", *TINY_DATA,
                     "--calib-batches", "1", "--out", str(tmp_path / "seed"))
    assert code == 0, res
    assert res["init"] == "supernet" and res["quantized"] == "qat"
    assert 0 <= res["miou"] <= 1 and 0 <= res["miou_fp32"] <= 1
    assert (tmp_path / "seed" / "standalone.pt").stat().st_size > 0
    from qanas.train.standalone import load_standalone

    saved = load_standalone(tmp_path / "seed" / "standalone.pt")
    assert saved["qat_model"] and [h["phase"] for h in saved["history"]] == ["float", "qat"]
    # --qat exports the QAT model itself as QDQ ONNX, the input of `qanas compile`
    assert res["onnx"] == str(tmp_path / "seed" / "model.onnx")
    from compiler.reference import boundary

    io = boundary(res["onnx"])
    assert len(io.inputs) == 1 and len(io.outputs) == 1

    out = tmp_path / "rc"
    argv = ["rankcorr", "--supernet", runs["fairnas"], "--compare", runs["spos"], "--n", "3",
            "--pool", "3", "--select", "pareto", "--bootstrap", "50", "--epochs", "1",
            "--qat-epochs", "1", *TINY_DATA, "--calib-batches", "1", "--top-k", "1", "2",
            "--out", str(out)]
    code, res = _cli(capsys, *argv)
    assert code == 0, res
    assert res["n"] == 3 and sum(r["seed_network"] for r in res["subnets"]) == 1
    assert set(res["correlations"]) == {"fairnas (fairnas)", "spos (spos)"}
    for corr in res["correlations"].values():
        assert corr["n"] <= 3 and set(corr["top_k"]) <= {"1", "2"}
    assert all("compare_miou" in r for r in res["subnets"])
    assert res["selection"] == "pareto" and set(res["baselines"]) == {
        "macs", "params", "latency (cortex-m4)"}
    assert all(r["macs"] > 0 and r["params"] > 0 for r in res["subnets"])
    for corr in [*res["correlations"].values(), *res["baselines"].values()]:
        assert len(corr["kendall_ci"]) == 2 and len(corr["spearman_ci"]) == 2
    assert (out / "scatter.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "rankcorr.json").read_text())["subnets"] == res["subnets"]
    # a rerun reuses the finished standalone runs
    before = [(out / "standalone" / f"{i:02d}" / "result.json").stat().st_mtime for i in range(3)]
    code, again = _cli(capsys, *argv)
    assert code == 0 and again["subnets"] == res["subnets"]
    assert before == [(out / "standalone" / f"{i:02d}" / "result.json").stat().st_mtime
                      for i in range(3)]


def _rankcorr_args(tmp_path, *extra):
    import argparse

    from qanas.cli.commands.rankcorr import _add_arguments, rankcorr_config

    parser = argparse.ArgumentParser()
    _add_arguments(parser)
    return rankcorr_config(parser.parse_args(["--supernet", "unused.pt", "--out", str(tmp_path),
                                              *TINY_DATA, "--epochs", "1", *extra]))


def test_standalone_results_are_shared_between_workers(tmp_path):
    """A subnet claimed by another live process is waited for, not trained twice; a result
    with another recipe is not reused."""
    import os
    import threading

    from qanas.rankcorr.standalone import finished_result, standalone_results
    from qanas.utils.claims import CLAIM_NAME
    from qanas.utils.io import atomic_write_json

    args = _rankcorr_args(tmp_path)
    chosen = ["squeezenas-small:a", "squeezenas-small:b"]
    configs = [args.standalone_config(a).to_dict() for a in chosen]
    folders = [tmp_path / "standalone" / f"{i:02d}" for i in range(2)]
    atomic_write_json(folders[0] / "result.json", {"arch": chosen[0], "miou": 0.5,
                                                   "miou_fp32": 0.6,
                                                   "standalone_config": configs[0]})
    folders[1].mkdir(parents=True)
    (folders[1] / CLAIM_NAME).write_text(json.dumps(
        {"host": __import__("socket").gethostname(), "pid": os.getppid()}))

    def other_worker_finishes():
        atomic_write_json(folders[1] / "result.json", {"arch": chosen[1], "miou": 0.3,
                                                       "miou_fp32": 0.4,
                                                       "standalone_config": configs[1]})

    timer = threading.Timer(0.3, other_worker_finishes)
    timer.start()
    results = standalone_results(args, chosen, tmp_path, poll_s=0.05)
    timer.join()
    assert {a: r["miou"] for a, r in results.items()} == {(chosen[0], 0): 0.5,
                                                          (chosen[1], 0): 0.3}
    # another recipe (more epochs) must not reuse the stored run
    other = _rankcorr_args(tmp_path, "--epochs", "3").standalone_config(chosen[0]).to_dict()
    assert finished_result(folders[0], chosen[0], configs[0]) is not None
    assert finished_result(folders[0], chosen[0], other) is None


def test_standalone_seeds_get_their_own_folders_and_agreement(tmp_path):
    from qanas.rankcorr.job import seed_agreement
    from qanas.rankcorr.standalone import run_folder

    args = _rankcorr_args(tmp_path, "--standalone-seeds", "0", "1", "0")
    assert args.seeds() == [0, 1]
    assert _rankcorr_args(tmp_path, "--seed", "3").seeds() == [3]
    assert run_folder(tmp_path, 2, 0, args).name == "02"
    assert run_folder(tmp_path, 2, 1, args).name == "02-seed1"
    assert seed_agreement([{"standalone_miou_per_seed": [0.1]}], [0], (1,)) is None
    rows = [{"standalone_miou_per_seed": pair} for pair in
            ([0.1, 0.2], [0.3, 0.1], [0.5, 0.6], [0.7, 0.8])]
    agreement = seed_agreement(rows, [0, 1], (2,))
    # one discordant pair (rows 0, 1) of six: tau = (5 - 1) / 6
    assert agreement["0-1"]["kendall_tau"] == pytest.approx(4 / 6)
    assert agreement["0-1"]["top_k"] == {"2": 1.0}
