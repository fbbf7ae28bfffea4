"""`qanas compile` and `qanas run` from the command line: JSON, round trip, errors."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from qanas.cli.main import main
from tests.support.onnx_models import conv_model, make_model
from tests.support.tools import require_tools

SUMMARY_KEYS = {"arena_bytes", "lower_bound_bytes", "weights_bytes", "kernels", "unsupported"}


def _cli(capsys, *argv) -> tuple[int, dict]:
    code = main(list(argv))
    out = capsys.readouterr().out.strip().splitlines()
    return code, json.loads(out[-1])


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "conv.onnx"
    onnx.save(conv_model(np.random.default_rng(5), 3, 4, 8, 3, 2, 1, 1, [1, 1, 1, 1]), path)
    return path


@pytest.fixture(scope="module")
def compiled(model_path, tmp_path_factory):
    require_tools("gcc", "make")
    out = tmp_path_factory.mktemp("cli_out") / "proj"
    code = main(["compile", str(model_path), "--target", "host", "--out", str(out), "--json"])
    assert code == 0
    return out


def test_compile_json_summary(model_path, tmp_path, capsys):
    require_tools("gcc", "make")
    code, summary = _cli(capsys, "compile", str(model_path), "--target", "host",
                         "--out", str(tmp_path / "p"), "--json")
    assert code == 0
    assert SUMMARY_KEYS <= set(summary)
    assert summary["unsupported"] == [] and summary["kernels"] >= 1
    assert summary["lower_bound_bytes"] <= summary["arena_bytes"]
    assert summary["weights_bytes"] == (4 * 3 * 3 * 3 + 4) * 4


def test_run_round_trip_writes_npz(compiled, model_path, tmp_path, capsys):
    import onnxruntime as ort

    x = np.random.default_rng(6).standard_normal((1, 3, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    code, report = _cli(capsys, "run", str(compiled), "--inputs", str(tmp_path / "x.npy"),
                        "--out", str(tmp_path / "out.npz"), "--json")
    assert code == 0 and report["runner"] == "host"
    got = np.load(tmp_path / "out.npz")["y"]
    ref = ort.InferenceSession(str(model_path)).run(None, {"x": x})[0]
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.abs(ref).max())
    code, report = _cli(capsys, "run", str(compiled), "--inputs", str(tmp_path / "x.npy"),
                        "--out", str(tmp_path / "out.npz"), "--json")
    assert code == 2 and "--force" in report["error"]


def test_run_rejects_wrong_input_shape(compiled, tmp_path, capsys):
    np.save(tmp_path / "bad.npy", np.zeros((1, 3, 4, 4), np.float32))
    code, report = _cli(capsys, "run", str(compiled), "--inputs", str(tmp_path / "bad.npy"),
                        "--out", str(tmp_path / "o.npz"), "--json")
    assert code == 2 and "[1, 3, 8, 8]" in report["error"]


def test_run_on_an_npu_target_points_to_bench_and_deploy(compiled, tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros((1, 3, 8, 8), np.float32))
    code, report = _cli(capsys, "run", str(compiled), "--inputs", str(tmp_path / "x.npy"),
                        "--target", "ethos-u55-128", "--out", str(tmp_path / "o.npz"), "--json")
    assert code == 2
    assert "NPU target" in report["error"] and "qanas bench" in report["error"]


def test_compile_refuses_to_overwrite_without_force(compiled, model_path, capsys):
    code, report = _cli(capsys, "compile", str(model_path), "--out", str(compiled), "--json")
    assert code == 2 and "--force" in report["error"]
    code, summary = _cli(capsys, "compile", str(model_path), "--out", str(compiled), "--force",
                         "--json")
    assert code == 0 and SUMMARY_KEYS <= set(summary)


def test_unsupported_op_is_a_user_error(tmp_path, capsys):
    eq = helper.make_node("Einsum", ["x", "x"], ["y"], equation="ij,ij->i")
    model = make_model([eq], [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
                       [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [])
    path = tmp_path / "einsum.onnx"
    onnx.save(model, path)
    code, report = _cli(capsys, "compile", str(path), "--out", str(tmp_path / "p"), "--json")
    assert code == 2
    assert report["error_type"] == "UnsupportedOpError" and "Einsum" in report["error"]
    assert not (tmp_path / "p" / "compile.json").exists()


def test_unknown_target_lists_known_ones(model_path, tmp_path, capsys):
    code, report = _cli(capsys, "compile", str(model_path), "--target", "nope",
                        "--out", str(tmp_path / "p"), "--json")
    assert code == 2 and "host" in report["error"]


def test_run_needs_a_compiled_project(tmp_path, capsys):
    np.save(tmp_path / "x.npy", np.zeros(3, np.float32))
    code, report = _cli(capsys, "run", str(tmp_path), "--inputs", str(tmp_path / "x.npy"),
                        "--out", str(tmp_path / "o.npz"), "--json")
    assert code == 2 and "qanas compile" in report["error"]


@pytest.mark.slow
@pytest.mark.toolchain
def test_run_uses_the_project_target_under_qemu(model_path, compiled, tmp_path, capsys):
    require_tools("arm-none-eabi-gcc", "qemu-system-arm")
    project = tmp_path / "m7"
    assert main(["compile", str(model_path), "--target", "cortex-m7", "--out", str(project),
                 "--json"]) == 0
    capsys.readouterr()
    x = np.random.default_rng(7).standard_normal((1, 3, 8, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    code, report = _cli(capsys, "run", str(project), "--inputs", str(tmp_path / "x.npy"),
                        "--out", str(tmp_path / "m7.npz"), "--json")
    assert code == 0
    assert (report["runner"], report["target"], report["ran_on"]) == ("qemu", "cortex-m7",
                                                                      "cortex-m7")
    code, host = _cli(capsys, "run", str(compiled), "--inputs", str(tmp_path / "x.npy"),
                      "--out", str(tmp_path / "host.npz"), "--json")
    assert code == 0
    np.testing.assert_allclose(np.load(tmp_path / "m7.npz")["y"],
                               np.load(tmp_path / "host.npz")["y"], rtol=1e-5, atol=1e-5)
