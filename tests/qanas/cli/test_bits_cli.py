"""A mixed-precision subnet (``...@w84...``) from the command line to host firmware.

`qanas train --arch '<arch>@w...'` trains with the string's per-layer weight bits and
its checkpoint records them; `qanas export --format qdq` writes INT4 initializers for
the 4-bit convs; `qanas compile` packs them (fewer weight bytes than the same
subnet trained all-int8) and the host build equals the NumPy reference bit for bit.
The other readers of architecture strings (report, `qanas eval --checkpoint`) accept
the ``@w`` form too.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import onnx
import pytest
import torch

from qanas.cli.main import main
from qanas.supernet import build_supernet
from tests.support.tools import require_tools

pytestmark = pytest.mark.slow  # two trainings and two host compiles: about a minute

ARCH = "squeezenas-small:" + "_".join(["k3e1g1"] * 20)
SIZE = (32, 64)
TINY = ["--image-size", *map(str, SIZE), "--batch-size", "2", "--steps-per-epoch", "1",
        "--train-length", "4", "--val-length", "2", "--val-batches", "1",
        "--calib-batches", "1", "--epochs", "1"]


def _cli(capsys, *argv) -> dict:
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def _mixed_bits(num_classes: int) -> str:
    """4 and 8 alternating, one digit per searchable conv of ARCH."""
    from qanas.space import get_space
    from qanas.space.bits import WeightBitsSpace, parse_config

    space = WeightBitsSpace(get_space("squeezenas-small"), SIZE, num_classes)
    return "".join("48"[i % 2] for i in range(space.slot_count(parse_config(ARCH))))


def _int4_weights(model) -> list[str]:
    """Names of the INT4 weight initializers of an ONNX model (zero points left out)."""
    return [i.name for i in model.graph.initializer
            if i.data_type == onnx.TensorProto.INT4 and not i.name.endswith("_zero_point")]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The subnet trained one step all-int8 and with mixed bits, each exported as QDQ."""
    root = tmp_path_factory.mktemp("bits_cli")
    int8 = root / "int8"
    assert main(["train", "--arch", ARCH, *TINY, "--out", str(int8),
                 "--export-onnx", str(int8 / "model.onnx"), "--json"]) == 0
    classes = int(torch.load(int8 / "standalone.pt", weights_only=True)["num_classes"])
    arch = f"{ARCH}@w{_mixed_bits(classes)}"
    mixed = root / "mixed"
    assert main(["train", "--arch", arch, *TINY, "--qat", "--qat-epochs", "1",
                 "--out", str(mixed), "--export-onnx", str(mixed / "trained.onnx"),
                 "--json"]) == 0
    assert main(["export", str(mixed / "standalone.pt"), "--format", "qdq",
                 "--out", str(mixed / "model.onnx"), "--json"]) == 0
    return {"arch": arch, "int8": int8, "mixed": mixed, "classes": classes}


def test_checkpoint_records_the_bits(runs):
    """The checkpoint's arch keeps the ``@w`` digits and its QuantSpec names each 4-bit conv."""
    payload = torch.load(runs["mixed"] / "standalone.pt", weights_only=True)
    assert payload["arch"] == runs["arch"]
    fours = runs["arch"].split("@w")[1].count("4")
    layers = payload["quant_spec"]["layer_weight_bits"]
    assert len(layers) == fours and {bits for _, bits in layers} == {4}


def test_export_writes_int4_weights_equal_to_training_export(runs):
    """`qanas export` of the QAT checkpoint: one INT4 initializer per 4-bit conv at opset 21,
    the same graph `qanas train --export-onnx` wrote."""
    from qanas.quant.int4_export import INT4_OPSET

    model = onnx.load(str(runs["mixed"] / "model.onnx"))
    assert len(_int4_weights(model)) == runs["arch"].split("@w")[1].count("4")
    assert {o.version for o in model.opset_import if o.domain in ("", "ai.onnx")} == {INT4_OPSET}
    trained = onnx.load(str(runs["mixed"] / "trained.onnx"))
    assert model.graph.SerializeToString() == trained.graph.SerializeToString()


def test_compiled_mixed_subnet_is_packed_and_bit_exact(runs, tmp_path, capsys):
    """`qanas compile --target host`: fewer weight bytes than the all-int8 subnet, and the
    host build's output equals the NumPy integer reference."""
    from compiler.reference import run_int8_reference
    from runtime.runners import get_runner
    from runtime.runners.base import read_io

    require_tools("gcc", "make")
    sizes = {}
    for name in ("int8", "mixed"):
        summary = _cli(capsys, "compile", str(runs[name] / "model.onnx"), "--target", "host",
                       "--out", str(tmp_path / name))
        sizes[name] = summary["weights_bytes"]
    assert sizes["mixed"] < sizes["int8"]
    x = np.random.default_rng(0).integers(-128, 128, (1, 3, *SIZE)).astype(np.int8)
    (spec,), _ = read_io(tmp_path / "mixed")
    reference = run_int8_reference(runs["mixed"] / "model.onnx", {spec.name: x})
    outputs = get_runner("host").run(tmp_path / "mixed", {spec.name: x}).outputs
    for name, ref in reference.items():
        got = np.asarray(outputs[name]).reshape(ref.shape)
        assert np.array_equal(got, ref), f"{name}: {(got != ref).sum()} of {ref.size} differ"


def test_eval_and_report_read_the_bits(runs, capsys):
    """`qanas eval --checkpoint` reads the ``@w`` checkpoint; the report draws the subnet's
    blocks with their convs' bits, and its front table gains a weight-bits column."""
    from qanas.report.architecture import subnet_blocks
    from qanas.report.load import RunData
    from qanas.report.sections_model import search_section

    result = _cli(capsys, "eval", "--checkpoint", str(runs["mixed"] / "standalone.pt"))
    assert result["arch"] == runs["arch"] and result["quantized"] == "qat"
    mixed = subnet_blocks(runs["arch"], SIZE, runs["classes"])
    plain = subnet_blocks(ARCH, SIZE, runs["classes"])
    assert [dataclasses.replace(b, weight_bits=()) for b in mixed] == plain
    widths = [w for b in mixed for w in b.weight_bits]
    assert widths.count(4) == runs["arch"].split("@w")[1].count("4") and widths[0] == 8
    front = [{"arch": runs["arch"], "miou": 0.5, "latency": 2.0, "latency_unit": "ms"},
             {"arch": ARCH, "miou": 0.4, "latency": 1.0, "latency_unit": "ms"}]
    section = search_section(RunData(runs["mixed"], {"search": {"target": "host",
                                                                 "front": front}}))
    table = section.tables[-1]
    assert table.headers[-1] == "weight bits"
    fours = runs["arch"].split("@w")[1]
    assert table.rows[0][-1] == f"{fours.count('4')} of {len(fours)} searchable convs 4-bit"
    assert table.rows[1][-1] == "all int8"


def test_eval_supernet_scores_and_exports_a_mixed_subnet(tmp_path, capsys):
    """`qanas eval --supernet --subnet 'min@w...'` quantizes with the string's bits: its
    --export-onnx holds one INT4 weight per 4-bit conv."""
    from qanas.space import get_space
    from qanas.space.bits import WeightBitsSpace
    from qanas.train.checkpoint import save_checkpoint

    space = get_space("squeezenas-small")
    torch.manual_seed(0)
    path = save_checkpoint(tmp_path / "supernet.pt", {
        "space": space.name, "num_classes": 6, "image_size": list(SIZE),
        "dataset": {"name": "synthetic", "root": None},
        "model": build_supernet(space, 6).state_dict(), "epoch": 0, "step": 0, "config": {},
        "history": [], "qat": False, "quant_spec": None})
    slots = WeightBitsSpace(space, SIZE, 6).slot_count(space.min_config())
    subnet = "min@w" + "4" * (slots - 1) + "8"
    result = _cli(capsys, "eval", "--supernet", str(path), "--subnet", subnet,
                  "--val-fraction", "0.05", "--bn-batches", "1", "--calib-batches", "1",
                  "--batch-size", "4", "--export-onnx", str(tmp_path / "min.onnx"))
    assert result["arch"] == f"{space.min_config().to_str()}@w{subnet.split('@w')[1]}"
    assert len(result["quant"]["layer_weight_bits"]) == slots - 1
    assert len(_int4_weights(onnx.load(str(tmp_path / "min.onnx")))) == slots - 1


def test_a_wrong_digit_count_names_the_searchable_convs(tmp_path, capsys):
    """Training a string with too few digits stops before training, naming the count."""
    assert main(["train", "--arch", f"{ARCH}@w44", *TINY, "--out", str(tmp_path / "bad")]) != 0
    assert "gives 2 weight bit widths; this subnet has" in capsys.readouterr().err
    assert not (tmp_path / "bad" / "standalone.pt").exists()
