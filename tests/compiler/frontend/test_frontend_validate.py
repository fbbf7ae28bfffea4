"""The frontend refuses broken files and models by name, before anything is lowered (issue 13).

Each case of the issue's "silently wrong compiles", "tracebacks" and "misleading
messages" lists is rebuilt here on a tiny QDQ model (`tests.support.fuzz_qdq.BASES`) and
must raise an `InvalidModelError` / `UnsupportedOpError` whose message names the
tensor or node; where the issue says onnxruntime rejects the model, that is checked
too. File problems must reach the CLI as one line with exit code 2.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from compiler.errors import (
    CompilerError,
    CompilerStageError,
    InvalidModelError,
    UnsupportedOpError,
)
from compiler.frontend import load_model, read_onnx
from compiler.frontend.validate import MAX_OPSET, MIN_OPSET
from tests.support.fuzz_qdq import BASES, ort_session


def _base(name: str, seed: int = 0) -> onnx.ModelProto:
    return BASES[name](np.random.default_rng(seed))


def _init(model: onnx.ModelProto, stem: str) -> onnx.TensorProto:
    return next(t for t in model.graph.initializer if t.name.rstrip("0123456789") == stem)


def _set(model: onnx.ModelProto, stem: str, value: np.ndarray) -> str:
    t = _init(model, stem)
    name = t.name
    t.CopyFrom(numpy_helper.from_array(np.asarray(value), name))
    return name


def _ort_rejects(model: onnx.ModelProto) -> bool:
    """True when onnxruntime refuses to load ``model`` or to run it on zeros."""
    try:
        sess = ort_session(model)
        sess.run(None, {i.name: np.zeros([d or 1 for d in i.shape], np.float32)
                        for i in sess.get_inputs()})
    except Exception:  # noqa: BLE001 - any onnxruntime refusal
        return True
    return False


def _output_zp(model: onnx.ModelProto) -> onnx.TensorProto:
    q = [n for n in model.graph.node if n.op_type == "QuantizeLinear"][-1]
    return next(t for t in model.graph.initializer if t.name == q.input[2])


def test_valid_bases_load():
    for name in BASES:
        assert load_model(_base(name)).quantized, name


def test_int16_output_zero_point_is_refused_by_name():
    model = _base("conv")
    model.opset_import[0].version = 21
    zp = _output_zp(model)
    zp.CopyFrom(helper.make_tensor(zp.name, TensorProto.INT16, [], [3]))
    with pytest.raises(UnsupportedOpError, match=r"QuantizeLinear.*INT16.*int8 and uint8"):
        load_model(model)


@pytest.mark.parametrize("value, word", [(0.0, "is zero"), (-0.5, "is negative"),
                                         (np.inf, "is infinite"), (np.nan, "is NaN"),
                                         (1e-40, "is 1e-40, below float32's smallest normal")])
def test_bad_scales_are_named(value, word):
    model = _base("add")
    name = _set(model, "scale", np.float32(value))
    with pytest.raises(InvalidModelError, match=rf"scale {name!r} {word}") as err:
        load_model(model)
    assert "got inf" not in str(err.value)


def test_wrong_length_per_channel_scale_names_the_channels():
    model = _base("conv")
    scale = _init(model, "w_scale")
    size = numpy_helper.to_array(scale).size
    _set(model, "w_scale", np.full(size + 1, 0.01, np.float32))
    _set(model, "w_zp", np.zeros(size + 1, np.int8))
    with pytest.raises(InvalidModelError, match=rf"{size + 1} values but axis 0 .* {size} "
                                                "channels"):
        load_model(model)


def test_bias_scale_inf_and_inconsistent_bias_scale_are_refused():
    model = _base("conv")
    s = numpy_helper.to_array(_init(model, "b_scale"))
    _set(model, "b_scale", np.full_like(s, np.inf))
    with pytest.raises(InvalidModelError, match="b_scale.* is infinite"):
        load_model(model)
    model = _base("conv")
    _set(model, "b_scale", s * 2)
    with pytest.raises(InvalidModelError, match=r"bias 'b\d+' of Conv .* s_x·s_w"):
        load_model(model)


def test_saturating_bias_and_bias_zero_point_are_refused():
    model = _base("gemm")
    b = numpy_helper.to_array(_init(model, "b")).copy()
    b[0] = 2 ** 31 - 1
    _set(model, "b", b)
    with pytest.raises(InvalidModelError, match="holds 2147483647.*overflow int32"):
        load_model(model)
    model = _base("gemm")
    zp = numpy_helper.to_array(_init(model, "b_zp")).copy()
    zp[...] = 2 ** 31 - 1
    _set(model, "b_zp", zp)
    with pytest.raises(InvalidModelError, match="non-zero zero point"):
        load_model(model)


def test_huge_dequantize_scale_is_refused():
    model = _base("maxpool")
    _set(model, "scale", np.float32(1e30))
    with pytest.raises(InvalidModelError, match=r"factor .* 2\^30"):
        load_model(model)


def test_out_of_range_axis_is_refused_like_onnxruntime():
    model = _base("conv")
    dq = next(n for n in model.graph.node if n.op_type == "DequantizeLinear"
              and n.input[0].startswith("w"))
    for a in dq.attribute:
        if a.name == "axis":
            a.i = 7
    assert _ort_rejects(model)
    with pytest.raises(InvalidModelError, match="axis 7 is out of range"):
        load_model(model)


def test_opset_range_matches_onnxruntime():
    model = _base("conv")
    model.opset_import[0].version = MAX_OPSET
    assert not _ort_rejects(model)
    load_model(model)
    for bad in (MAX_OPSET + 1, 30, MIN_OPSET - 1):
        model.opset_import[0].version = bad
        with pytest.raises(UnsupportedOpError, match=f"opset {bad} is not supported"):
            load_model(model)
    model.opset_import[0].version = MAX_OPSET + 1
    assert _ort_rejects(model)


def test_ir_version_zero_is_not_blamed_on_the_exporter():
    model = _base("sigmoid")
    model.ir_version = 0
    with pytest.raises(InvalidModelError, match="no ir_version: it is not a complete"):
        load_model(model)


@pytest.mark.parametrize("group", [0, -1, 3])
def test_conv_group_must_divide_channels(group):
    model = _base("conv")
    conv = next(n for n in model.graph.node if n.op_type == "Conv")
    for a in conv.attribute:
        if a.name == "group":
            a.i = group
    with pytest.raises(CompilerError, match=r"group") as err:
        load_model(model)
    assert isinstance(err.value, (InvalidModelError, UnsupportedOpError)), type(err.value)


def test_asymmetric_weights_are_refused():
    model = _base("gemm")
    zp = numpy_helper.to_array(_init(model, "w_zp")).copy()
    zp[...] = 3
    _set(model, "w_zp", zp)
    with pytest.raises(UnsupportedOpError, match="must be symmetric"):
        load_model(model)


def test_unexpected_library_error_names_the_node(monkeypatch):
    from compiler.frontend import onnx_ops

    def broken(node, ctx, attrs):
        raise ValueError("numpy says: operands could not be broadcast together")

    monkeypatch.setitem(onnx_ops.CONVERTERS, "Sigmoid", broken)
    with pytest.raises(CompilerStageError, match=r"import of Sigmoid \(node 'sigmoid\d+'\)") as e:
        load_model(_base("sigmoid"))
    assert isinstance(e.value.__cause__, ValueError)
    assert "\n" not in str(e.value)


# ---- files ---------------------------------------------------------------------------------
def _model_file(tmp_path) -> bytes:
    path = tmp_path / "good.onnx"
    onnx.save(_base("conv"), path)
    return path.read_bytes()


def _bad_files(tmp_path):
    good = _model_file(tmp_path)
    rng = np.random.default_rng(0)
    yield "empty", b"", "is empty"
    yield "random", rng.bytes(4096), "not an ONNX model"
    yield "truncated", good[: len(good) // 2], "ONNX model"
    yield "lfs", (b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"0" * 64
                  + b"\nsize 12345\n"), "Git LFS pointer"


def test_broken_files_are_refused_in_one_line(tmp_path):
    for name, data, words in _bad_files(tmp_path):
        path = tmp_path / f"{name}.onnx"
        path.write_bytes(data)
        with pytest.raises(InvalidModelError, match=words) as err:
            load_model(path)
        assert "\n" not in str(err.value), name
    with pytest.raises(InvalidModelError, match="is a directory"):
        read_onnx(tmp_path)


def _external_model(tmp_path):
    model = _base("conv")
    folder = tmp_path / "ext"
    folder.mkdir()
    onnx.save(model, folder / "m.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
              location="weights.bin", size_threshold=0)
    return folder / "m.onnx"


def test_external_data_is_loaded_when_present(tmp_path):
    assert load_model(_external_model(tmp_path)).quantized


def test_missing_external_data_is_named(tmp_path):
    path = _external_model(tmp_path)
    (path.parent / "weights.bin").unlink()
    with pytest.raises(InvalidModelError, match="weights.bin.* missing"):
        load_model(path)


def test_external_data_outside_the_model_folder_is_refused(tmp_path):
    path = _external_model(tmp_path)
    secret = tmp_path / "secret.bin"
    secret.write_bytes(b"\0" * 4096)
    model = onnx.load(str(path), load_external_data=False)
    for t in model.graph.initializer:
        for entry in t.external_data:
            if entry.key == "location":
                entry.value = "../secret.bin"
    onnx.save(model, path)
    with pytest.raises(InvalidModelError, match="outside the model's folder"):
        load_model(path)


def test_cli_reports_broken_files_in_one_line_with_exit_2(tmp_path, capsys):
    from qanas.cli.main import main

    for name, data, _ in _bad_files(tmp_path):
        path = tmp_path / f"{name}.onnx"
        path.write_bytes(data)
        code = main(["compile", str(path), "--target", "host", "--out", str(tmp_path / name)])
        err = capsys.readouterr().err.strip()
        assert code == 2, (name, err)
        assert err.startswith("qanas compile: error:") and "\n" not in err, (name, err)
        assert "Traceback" not in err


def test_compile_names_a_folder_passed_as_the_model(tmp_path, capsys):
    from qanas.cli.main import main

    assert main(["compile", str(tmp_path), "--target", "host", "--out",
                 str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "is a folder" in err and ".onnx" in err


def test_the_reference_reads_model_files_with_one_line_errors(tmp_path):
    """The NumPy reference (and the TFLite/Vela paths that use it) read files through
    `read_onnx` too, so a broken file is a one-line InvalidModelError there as well."""
    from compiler.errors import InvalidModelError
    from compiler.reference import run_int8_reference

    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"version https://git-lfs.github.com/spec/v1\noid sha256:00\n")
    with pytest.raises(InvalidModelError, match="LFS"):
        run_int8_reference(broken, {})
