"""`qanas export`: a standalone checkpoint as float ONNX, int8 QDQ ONNX and int8 TFLite.

Each format is checked against an independent reference: the float ONNX against the
PyTorch model in onnxruntime, the QDQ ONNX against the file `qanas train
--export-onnx` wrote for the same checkpoint (and it compiles), the TFLite file by
loading it in the TFLite interpreter.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch

from qanas.cli.main import main

ARCH = "squeezenas-small:" + "_".join(["k3e1g1"] * 20)
TINY = ["--image-size", "32", "64", "--batch-size", "2", "--steps-per-epoch", "1",
        "--train-length", "4", "--val-length", "2", "--val-batches", "1",
        "--calib-batches", "1", "--epochs", "1"]


def _cli(capsys, *argv) -> tuple[int, dict]:
    code = main([*argv, "--json"])
    return code, json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Two standalone checkpoints of one tiny subnet: post-training int8 and QAT."""
    root = tmp_path_factory.mktemp("standalone")
    runs = {}
    for name, extra in (("ptq", []), ("qat", ["--qat", "--qat-epochs", "1"])):
        out = root / name
        assert main(["train", "--arch", ARCH, *TINY, *extra, "--out", str(out),
                     "--export-onnx", str(out / "trained.onnx"), "--json"]) == 0
        runs[name] = out
    return runs


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["ptq", "qat"])
def test_qdq_export_equals_what_training_exported(trained, kind, tmp_path, capsys):
    code, res = _cli(capsys, "export", str(trained[kind] / "standalone.pt"), "--format", "qdq",
                     "--out", str(tmp_path / "model.onnx"))
    assert code == 0, res
    assert res["quantized"] == kind and res["image_size"] == [32, 64]
    from qanas.quant.export import run_onnx

    x = torch.randn(1, 3, 32, 64, generator=torch.Generator().manual_seed(0))
    ours = run_onnx(tmp_path / "model.onnx", x)
    reference = run_onnx(trained[kind] / "trained.onnx", x)
    np.testing.assert_array_equal(ours, reference)


@pytest.mark.slow
def test_float_onnx_export_matches_the_torch_model(trained, tmp_path, capsys):
    from qanas.quant.export import run_onnx
    from qanas.train.export import load_standalone_model

    code, res = _cli(capsys, "export", str(trained["ptq"] / "standalone.pt"), "--format", "onnx",
                     "--image-size", "64", "128", "--out", str(tmp_path / "float.onnx"))
    assert code == 0, res
    model = onnx.load(str(tmp_path / "float.onnx"))
    dims = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == [1, 3, 64, 128]
    x = torch.randn(1, 3, 64, 128, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = load_standalone_model(trained["ptq"] / "standalone.pt").float_model(x).numpy()
    np.testing.assert_allclose(run_onnx(tmp_path / "float.onnx", x), expected, rtol=1e-4,
                               atol=1e-4)


@pytest.mark.slow
def test_tflite_export_loads_in_the_interpreter(trained, tmp_path, capsys):
    code, res = _cli(capsys, "export", str(trained["qat"] / "standalone.pt"), "--format",
                     "tflite", "--out", str(tmp_path / "model.tflite"))
    assert code == 0, res
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(tmp_path / "model.tflite"))
    interpreter.allocate_tensors()
    (inp,) = interpreter.get_input_details()
    assert list(inp["shape"]) == [1, 32, 64, 3] and inp["dtype"] == np.int8


def test_export_refuses_to_overwrite_and_names_the_fix(tmp_path, capsys):
    existing = tmp_path / "model.onnx"
    existing.write_bytes(b"keep me")
    code = main(["export", str(tmp_path / "standalone.pt"), "--out", str(existing)])
    assert code == 2
    assert "--force" in capsys.readouterr().err
    assert existing.read_bytes() == b"keep me"


def test_export_of_a_missing_checkpoint_says_how_to_make_one(tmp_path, capsys):
    code = main(["export", str(tmp_path / "nope.pt"), "--out", str(tmp_path / "m.onnx")])
    assert code == 2
    assert "qanas train" in capsys.readouterr().err


@pytest.mark.slow
def test_eval_checkpoint_scores_the_standalone_model(trained, capsys):
    code, res = _cli(capsys, "eval", "--checkpoint", str(trained["qat"] / "standalone.pt"),
                     "--val-fraction", "1")
    assert code == 0, res
    assert res["arch"] == ARCH and res["quantized"] == "qat"
    assert 0 <= res["miou"] <= 1 and 0 <= res["miou_fp32"] <= 1
    assert res["macs"] > 0 and res["params"] > 0 and res["val_images"] == 2
    # the same int8 mIoU `qanas train` measured on the same (whole) validation split
    saved = json.loads((trained["qat"] / "result.json").read_text())
    assert res["miou"] == pytest.approx(saved["miou"])
    assert res["miou_fp32"] == pytest.approx(saved["miou_fp32"])


def test_eval_needs_exactly_one_model_source(capsys):
    with pytest.raises(SystemExit):
        main(["eval"])
    assert "--supernet" in capsys.readouterr().err
