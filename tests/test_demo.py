"""`qanas demo` end to end, reduced: train, score int8, compile, host fidelity, QEMU."""

from __future__ import annotations

import json

import pytest

from qanas.cli.main import main
from tests.conftest import require_tools


@pytest.mark.slow
@pytest.mark.toolchain
def test_reduced_demo_runs_the_whole_pipeline(tmp_path, capsys):
    require_tools("arm-none-eabi-gcc", "qemu-system-arm")
    out = tmp_path / "demo"
    code = main(["demo", "--image-size", "32", "64", "--epochs", "1", "--steps-per-epoch", "3",
                 "--candidates", "0", "--firmware-targets", "cortex-m4", "--out", str(out),
                 "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    saved = json.loads((out / "results.json").read_text())
    assert saved["chosen"]["arch"] == result["chosen"]["arch"]
    assert (out / "config.json").is_file() and (out / "supernet" / "supernet.pt").is_file()
    assert {c["arch"] for c in result["candidates"]} >= {result["chosen"]["arch"]}
    chosen = result["chosen"]
    assert chosen["arena_bytes"] == chosen["lower_bound_bytes"]
    fidelity = result["fidelity"]
    assert fidelity["images"] > 0
    assert fidelity["bit_exact_fraction_integer_reference"] == 1.0
    (firmware,) = result["firmware"]
    assert firmware["fits"] and firmware["outputs_match_host"] and firmware["repeatable"]
    assert firmware["unit"] == "instructions"
