"""`qanas demo` end to end, reduced: train (float + QAT), NSGA-II, latency check, QAT fine-tune,
compile, host fidelity, QEMU firmware, Vela, HTML report; for squeezenas-small and for the
CNN + transformer hybrid efficient-topformer."""

from __future__ import annotations

import json

import pytest

from qanas.cli.main import main
from tests.support.scripts import load_script
from tests.support.tools import require_tools


@pytest.mark.slow
@pytest.mark.toolchain
def test_reduced_demo_runs_the_whole_pipeline(tmp_path, capsys):
    require_tools("arm-none-eabi-gcc", "qemu-system-arm")
    out = tmp_path / "demo"
    code = main(["demo", "--image-size", "32", "64", "--epochs", "1", "--steps-per-epoch", "3",
                 "--qat-supernet-steps", "2", "--budget", "6", "--latency-subnets", "2",
                 "--qat-steps", "2", "--fidelity-images", "2", "--val-images", "8",
                 "--firmware-targets", "cortex-m4", "--out", str(out), "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    saved = json.loads((out / "results.json").read_text())
    assert saved["chosen"]["arch"] == result["chosen"]["arch"]
    assert (out / "config.json").is_file()
    assert (out / "supernet" / "supernet.pt").is_file()
    assert (out / "supernet_qat" / "supernet.pt").is_file()

    training = result["training"]
    assert [h["phase"] for h in training["history"]] == ["float", "qat"]

    search = result["search"]
    assert search["algo"] == "nsga2" and len(search["evaluated"]) == 6
    front = {r["arch"] for r in search["front"]}
    assert search["chosen_arch"] in front
    assert all(r["sram_bytes"] <= search["constraints"]["sram_bytes"] for r in search["front"])
    assert (out / "search" / "archive.sqlite").is_file() and (out / "search" / "front.json").is_file()

    latency = result["lut_validation"]
    assert latency["n"] >= 1 and latency["measured_unit"] == "instructions"
    assert all(row["measured"] > 0 for row in latency["rows"])

    chosen = result["chosen"]
    assert chosen["arch"] in front
    assert chosen["arena_bytes"] == chosen["lower_bound_bytes"]
    assert result["qat"]["steps"] == 2 and 0.0 <= result["qat"]["miou_int8_after"] <= 1.0

    fidelity = result["fidelity"]
    assert fidelity["images"] > 0
    assert fidelity["bit_exact_fraction_integer_reference"] == 1.0
    (firmware,) = result["firmware"]
    assert firmware["fits"] and firmware["outputs_match_host"] and firmware["repeatable"]
    assert firmware["unit"] == "instructions"

    npu = result["npu"]
    assert npu["estimate"] is True and npu["cycles"] > 0 and npu["target"] == "ethos-u55-128"

    report = (out / "report.html").read_text()
    assert result["report"] == str(out / "report.html")
    assert chosen["arch"] in report and f"{chosen['arena_bytes']:,} B" in report

    # the README's results table is generated from this file
    text = load_script("scripts/demo_results_table.py").table(saved)
    assert f"{chosen['arena_bytes']:,}" in text and "| what | measured |" in text


@pytest.mark.slow
@pytest.mark.toolchain
def test_reduced_demo_deploys_the_transformer_hybrid_on_cortex_m55(tmp_path, capsys):
    """`--space efficient-topformer` end to end at its smallest image size (64×128) on
    cortex-m55, with one compile (no latency check): the deployed integer mIoU is within
    0.5 pp of fake-quant, and the attention steps run in the firmware and are in the report."""
    require_tools("arm-none-eabi-gcc", "qemu-system-arm")
    out = tmp_path / "demo"
    code = main(["demo", "--space", "efficient-topformer", "--target", "cortex-m55",
                 "--image-size", "64", "128", "--epochs", "1", "--steps-per-epoch", "2",
                 "--qat-supernet-steps", "1", "--budget", "3", "--latency-subnets", "0",
                 "--qat-steps", "1", "--fidelity-images", "2", "--val-images", "4",
                 "--firmware-targets", "cortex-m55", "--out", str(out), "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["space"] == "efficient-topformer" and result["lut_validation"] is None
    assert not (out / "latency").exists()
    assert result["chosen"]["arch"] in {r["arch"] for r in result["search"]["front"]}

    fidelity = result["fidelity"]
    assert fidelity["images"] == 2 and fidelity["bit_exact_fraction_integer_reference"] == 1.0
    assert abs(fidelity["miou_deployed_int8"] - fidelity["miou_fake_quant"]) <= 0.005
    (firmware,) = result["firmware"]
    assert firmware["fits"] and firmware["outputs_match_host"] and firmware["repeatable"]
    softmax = [layer for layer in firmware["layers"] if "softmax" in layer["kernel"]]
    assert softmax and all(layer["value"] > 0 for layer in softmax)
    assert result["npu"]["cycles"] > 0

    report = (out / "report.html").read_text()
    assert "Attention steps on cortex-m55" in report
    assert all(layer["kernel"] in report for layer in softmax)


def test_demo_refuses_an_unmarked_project_folder_before_training(tmp_path, capsys):
    """An earlier run's project folder without the qanas marker stops the demo at once,
    naming it, instead of at the compile stage after the training."""
    out = tmp_path / "demo"
    (out / "project").mkdir(parents=True)
    (out / "project" / "notes.txt").write_text("mine")
    code = main(["demo", "--image-size", "32", "64", "--epochs", "1", "--out", str(out),
                 "--force"])
    assert code == 2
    err = capsys.readouterr().err
    assert "project" in err and "marker" in err
    assert (out / "project" / "notes.txt").read_text() == "mine"
    assert not (out / "supernet").exists()
