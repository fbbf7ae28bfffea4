"""`--force` replaces only folders qanas wrote; `--out` naming a file is a one-line error.

A compiled project and an NPU bundle carry the `.qanas-project` marker. A folder without
it (a user's own project, with an ``include/`` and a ``Makefile``) is refused even with
``--force``, exit 2, and left byte for byte as it was (issue 13).
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from compiler.driver import compile_model
from compiler.npu.bundle import BundleExistsError, write_npu_bundle
from compiler.project.output_dir import (
    BUNDLE_KIND,
    MARKER_FILE,
    PROJECT_KIND,
    OutputDirExistsError,
    OutputIsAFileError,
    check_output_dir,
    prepare_output_dir,
    read_marker,
    write_marker,
)
from qanas.cli.main import main
from targets import get_target
from tests.support.onnx_models import conv_model


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("force") / "conv.onnx"
    onnx.save(conv_model(np.random.default_rng(7), 2, 4, 6, 3, 1, 1, 1, [1, 1, 1, 1]), path)
    return path


def _user_folder(root):
    """A folder a user wrote: the names qanas writes, with the user's content."""
    folder = root / "mine"
    for rel, text in {"Makefile": "all:\n\techo mine\n", "include/mine.h": "#define MINE 1\n",
                      "kernels/k.c": "int k;\n", "runtime/r.c": "int r;\n",
                      "build/app.o": "obj", "notes.txt": "keep me\n"}.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)
    return folder


def _snapshot(folder) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None
            for p in sorted(folder.rglob("*"))}


def _cli(capsys, *argv) -> tuple[int, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.err + captured.out


def test_compile_force_refuses_a_folder_qanas_did_not_write(model_path, tmp_path, capsys):
    folder = _user_folder(tmp_path)
    before = _snapshot(folder)
    code, err = _cli(capsys, "compile", str(model_path), "--out", str(folder), "--force")
    assert code == 2
    assert str(folder) in err and MARKER_FILE in err and "nothing was changed" in err
    assert len(err.strip().splitlines()) == 1
    assert _snapshot(folder) == before


def test_compile_writes_the_marker_and_force_replaces_its_own_project(model_path, tmp_path,
                                                                      capsys):
    out = tmp_path / "proj"
    assert compile_model(model_path, "host", out).out_dir == out
    marker = json.loads((out / MARKER_FILE).read_text())
    assert marker["tool"] == "qanas" and marker["kind"] == PROJECT_KIND and marker["version"]
    (out / "kernels" / "stale.c").write_text("stale\n")
    (out / "my_main.c").write_text("int main(void) { return 0; }\n")
    code, err = _cli(capsys, "compile", str(model_path), "--out", str(out))
    assert code == 2 and "--force" in err  # its own project, but no --force
    assert main(["compile", str(model_path), "--out", str(out), "--force", "--json"]) == 0
    assert not (out / "kernels" / "stale.c").exists()  # a generated folder, recreated
    assert (out / "my_main.c").exists()  # a file qanas does not write is kept
    assert read_marker(out)["kind"] == PROJECT_KIND and (out / "compile.json").is_file()


def test_an_empty_folder_needs_no_force(model_path, tmp_path):
    (tmp_path / "empty").mkdir()
    compile_model(model_path, "host", tmp_path / "empty")
    assert read_marker(tmp_path / "empty")["kind"] == PROJECT_KIND


@pytest.mark.parametrize("under", [False, True])
def test_out_naming_a_file_is_a_one_line_error(model_path, tmp_path, capsys, under):
    (tmp_path / "f").write_text("precious\n")
    out = tmp_path / "f" / "sub" if under else tmp_path / "f"
    for command in ("compile", "deploy"):
        extra = ["--target", "cortex-m4"] if command == "deploy" else []
        code, err = _cli(capsys, command, str(model_path), "--out", str(out), "--force", *extra)
        assert code == 2 and "existing file" in err and str(out) in err
        assert len(err.strip().splitlines()) == 1
    assert (tmp_path / "f").read_text() == "precious\n"


@pytest.mark.parametrize("target", ["cortex-m4", "ethos-u55-128"])
def test_deploy_force_refuses_a_user_folder(model_path, tmp_path, capsys, target):
    folder = _user_folder(tmp_path)
    before = _snapshot(folder)
    code, err = _cli(capsys, "deploy", str(model_path), "--target", target, "--out",
                     str(folder), "--force")
    assert code == 2 and MARKER_FILE in err and len(err.strip().splitlines()) == 1
    assert _snapshot(folder) == before
    (tmp_path / "f").write_text("precious\n")
    code, err = _cli(capsys, "deploy", str(model_path), "--target", target, "--out",
                     str(tmp_path / "f"))
    assert code == 2 and "existing file" in err


def test_npu_bundle_force_refuses_a_user_folder_before_running_vela(tmp_path):
    folder = _user_folder(tmp_path)
    before = _snapshot(folder)
    with pytest.raises(BundleExistsError, match="no qanas marker"):
        write_npu_bundle(tmp_path / "absent.tflite", get_target("ethos-u55-128"), folder,
                         force=True)
    assert _snapshot(folder) == before
    (tmp_path / "f").write_text("x")
    with pytest.raises(OutputIsAFileError):
        write_npu_bundle(tmp_path / "absent.tflite", get_target("ethos-u55-128"),
                         tmp_path / "f", force=True)


def test_a_marker_of_another_kind_is_refused(tmp_path):
    folder = tmp_path / "bundle"
    folder.mkdir()
    write_marker(folder, BUNDLE_KIND)
    (folder / "bundle.json").write_text("{}")
    with pytest.raises(OutputDirExistsError, match="npu-bundle"):
        check_output_dir(folder, True, PROJECT_KIND)
    assert check_output_dir(folder, True, BUNDLE_KIND) == folder


def test_prepare_removes_only_the_generated_folders_of_a_marked_folder(tmp_path):
    folder = tmp_path / "p"
    prepare_output_dir(folder, False, PROJECT_KIND)
    for rel in ("kernels/a.c", "other/b.c", "top.txt"):
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text("x")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.h").write_text("x")
    (folder / "include").symlink_to(outside, target_is_directory=True)
    prepare_output_dir(folder, True, PROJECT_KIND, generated=("kernels", "include", "build"))
    assert not (folder / "kernels").exists() and not (folder / "include").exists()
    assert (folder / "other" / "b.c").exists() and (folder / "top.txt").exists()
    assert (outside / "keep.h").exists()  # the link is removed, not what it points at


@pytest.mark.parametrize("text", ["", "not json", '{"tool": "other", "kind": "c-project"}',
                                  "[1, 2]"])
def test_an_invalid_marker_counts_as_none(tmp_path, text):
    (tmp_path / MARKER_FILE).write_text(text)
    assert read_marker(tmp_path) is None
    with pytest.raises(OutputDirExistsError, match="no qanas marker"):
        check_output_dir(tmp_path, True, PROJECT_KIND)
