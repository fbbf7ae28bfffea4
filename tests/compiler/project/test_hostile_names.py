"""Model text cannot inject code into the generated C (issue 13).

Tiny int8 QDQ models whose input/output names and file path carry C payloads (a
constructor that prints "X", a live ``#error``, quotes, backslashes, newlines,
``#include``, ``??/`` trigraphs, non-ASCII, names that clash once sanitized or that equal
the plan's own buffer names) are compiled, built with ``-Wall -Wextra -Werror`` on the
host and run. The build must be clean, no payload may run, no model text may sit in
the C outside a string literal, the outputs must equal the NumPy int8 reference and
onnxruntime within its documented 1 LSB, and the harness's JSON report must parse with
the model's own names. One model also goes through the Cortex-M firmware harness
(QEMU), whose ``@O`` lines percent-encode the names.
"""

from __future__ import annotations

import json
import re
import subprocess
import zlib
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from compiler.driver import compile_model
from compiler.plan import MAX_IDENTIFIER, unique_identifiers
from compiler.project.c_strings import c_string_literal
from compiler.reference import run_int8_reference
from runtime.runners.base import read_io
from runtime.runners.protocol import parse_report
from tests.support.tools import require_tools

CTOR = ('y*/ extern int puts(const char *); __attribute__((constructor)) '
        'static void f(void){puts("X");} /*')
ERROR = "*/\n#error boom\n/*"
QUOTES = 'say "hi" \\ to a back\\slash\\'
NEWLINES = "two\nlines\r\tand a tab"
INCLUDE = "#include <stdio.h>"
TRIGRAPH = "tri??/\n??=define ??( ??) ??!"
UNICODE = "ñame ✓ 名前 😀"

CASES = {
    # (input names, output names, path components the model file sits under)
    "injection": ([INCLUDE, TRIGRAPH], [CTOR, ERROR], ["y*", CTOR.split("/")[1], "*"]),
    "text": (["x-in", "x_in"], [QUOTES + NEWLINES, UNICODE], ["*", "\n#error boom\n", "*"]),
    "reserved": (["const_0", "k0_out"], ["output_0", "workspace_0"], ['q"u\\o??/te', "ü"]),
    # C keywords and the locals of TVM's kernels (TVM names kernel variables after inputs)
    "keywords": (["int", "ñame✓"], ["return", "args"],
                 [b"not utf-8 \xff".decode("utf-8", "surrogateescape")]),
}
FRAGMENTS = ('puts("X")', "((constructor))", "#error", "<stdio.h>", '"hi"', "??", "two\nlines",
             "ñ", "名", "x-in", "\\")
"""Pieces of the payloads (each with a character no C identifier has) that may appear in the
generated C only inside string literals; their sanitized identifiers may appear anywhere."""


def qdq_two_branch_model(in_names, out_names, seed: int = 0) -> onnx.ModelProto:
    """Two int8 QDQ conv branches: in_names[i] → Q/DQ → Conv (+ReLU on branch 1) → Q/DQ → out_names[i].

    One conv per branch, so onnxruntime's float rounding stays within the 1 LSB of
    docs/int8-arithmetic.md.
    """
    rng = np.random.default_rng(seed)
    inits = [
        numpy_helper.from_array(np.array(0.05, np.float32), "sx"),
        numpy_helper.from_array(np.array(0, np.int8), "zx"),
        numpy_helper.from_array(np.array(0.01, np.float32), "sw"),
        numpy_helper.from_array(np.array(0, np.int8), "zw"),
        numpy_helper.from_array(np.array(0.05 * 0.01, np.float32), "sb"),
        numpy_helper.from_array(np.array(0, np.int32), "zb"),
        numpy_helper.from_array(np.array(0.08, np.float32), "sy"),
        numpy_helper.from_array(np.array(3, np.int8), "zy"),
        numpy_helper.from_array(rng.integers(-127, 128, (4, 2, 3, 3)).astype(np.int8), "w"),
        numpy_helper.from_array(rng.integers(-400, 400, (4,)).astype(np.int32), "b"),
    ]
    nodes = [helper.make_node("DequantizeLinear", ["w", "sw", "zw"], ["wd"]),
             helper.make_node("DequantizeLinear", ["b", "sb", "zb"], ["bd"])]
    for i, (x, y) in enumerate(zip(in_names, out_names, strict=True)):
        last = f"c{i}"
        nodes += [helper.make_node("QuantizeLinear", [x, "sx", "zx"], [f"xq{i}"]),
                  helper.make_node("DequantizeLinear", [f"xq{i}", "sx", "zx"], [f"xd{i}"]),
                  helper.make_node("Conv", [f"xd{i}", "wd", "bd"], [last], pads=[1, 1, 1, 1])]
        if i == 1:
            nodes.append(helper.make_node("Relu", [last], [f"r{i}"]))
            last = f"r{i}"
        nodes += [helper.make_node("QuantizeLinear", [last, "sy", "zy"], [f"yq{i}"]),
                  helper.make_node("DequantizeLinear", [f"yq{i}", "sy", "zy"], [y])]
    graph = helper.make_graph(
        nodes, "hostile",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 2, 6, 6]) for n in in_names],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4, 6, 6]) for n in out_names],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def _save(tmp: Path, parts, model: onnx.ModelProto) -> Path:
    folder = tmp.joinpath(*parts)
    folder.mkdir(parents=True)
    path = folder / "model.onnx"
    onnx.save(model, path)
    return path


def _make(project: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "-C", str(project), "-j2", *extra], capture_output=True,
                          text=True)


def _strip_string_literals(c_text: str) -> str:
    return re.sub(r'"(?:\\.|[^"\\\n])*"', '""', c_text)


@pytest.fixture(scope="module")
def build_case(tmp_path_factory):
    """case name → its model compiled for the host and built with `make` (once each)."""
    cache = {}

    def build(case: str) -> dict:
        if case not in cache:
            require_tools("gcc", "make")
            ins, outs, parts = CASES[case]
            tmp = tmp_path_factory.mktemp(f"hostile_{case}")
            path = _save(tmp, parts, qdq_two_branch_model(ins, outs))
            result = compile_model(str(path), "host", tmp / "project")
            cache[case] = {"case": case, "path": path, "result": result,
                           "make": _make(result.out_dir), "ins": ins, "outs": outs}
        return cache[case]

    return build


@pytest.fixture(params=sorted(CASES))
def built(request, build_case):
    return build_case(request.param)


def _int8_inputs(result, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {s["name"]: rng.integers(-128, 128, size=s["shape"]).astype(np.int8)
            for s in result.io["inputs"]}


def _run_harness(project: Path, inputs: dict, out_dir: Path) -> subprocess.CompletedProcess:
    """Runs ``build/host_main`` once on `inputs` (written beside `out_dir`)."""
    in_specs, _ = read_io(project)
    out_dir.mkdir(parents=True, exist_ok=True)
    files = []
    for i, s in enumerate(in_specs):
        f = out_dir.parent / f"input_{i}.bin"
        f.write_bytes(inputs[s.name].tobytes())
        files.append(str(f))
    return subprocess.run([str(project / "build" / "host_main"), "1", str(out_dir), *files],
                          capture_output=True)


def test_build_is_clean_under_werror(built):
    proc = built["make"]
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stderr.lower() and "error" not in proc.stderr.lower()


def test_no_model_text_outside_string_literals(built):
    out = built["result"].out_dir
    kernels = [f"kernels/{p.name}" for p in (out / "kernels").glob("*.c")]
    assert kernels
    for name in ("model.h", "model.c", "weights.c", "sources.mk", "Makefile", *kernels):
        text = (out / name).read_text()
        assert text.isascii(), f"{name} holds non-ASCII text"
        code = _strip_string_literals(text)
        for fragment in FRAGMENTS:
            if name.endswith(".c") or name.endswith(".h") or fragment != "\\":
                assert fragment not in code, f"{fragment!r} of a model name reached {name}"
    header = (out / "model.h").read_text()
    assert f"#define QANAS_MODEL_SOURCE {c_string_literal(str(built['path']))}\n" in header


def test_injected_code_does_not_run_and_json_names_the_outputs(built, tmp_path):
    result = built["result"]
    proc = _run_harness(result.out_dir, _int8_inputs(result), tmp_path / "out")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.decode("ascii").splitlines()  # the report is pure ASCII
    assert len(lines) == 1 and lines[0] != "X" and proc.stderr == b""
    report = json.loads(lines[0])
    assert report["status"] == "QANAS_OK"
    assert [o["name"] for o in report["outputs"]] == built["outs"]
    assert [o["file"] for o in report["outputs"]] == [
        str(tmp_path / "out" / f"output_{i}.bin") for i in range(len(built["outs"]))]


def test_qanas_run_reads_the_outputs_by_their_names(built, tmp_path, capfd):
    from qanas.cli.main import main

    result = built["result"]
    files = []
    for i, x in enumerate(_int8_inputs(result, seed=2).values()):
        np.save(tmp_path / f"in{i}.npy", x)
        files.append(str(tmp_path / f"in{i}.npy"))
    capfd.readouterr()
    code = main(["run", str(result.out_dir), "--inputs", *files, "--out",
                 str(tmp_path / "out.npz"), "--json"])
    captured = capfd.readouterr()
    assert code == 0, captured.err
    assert "X" not in captured.out.splitlines() and "X" not in captured.err.splitlines()
    with np.load(tmp_path / "out.npz") as got:
        assert sorted(got.files) == sorted(built["outs"])


def test_names_round_trip_and_identifiers_are_distinct(built):
    io = built["result"].io
    assert [s["name"] for s in io["inputs"]] == built["ins"]
    assert [s["name"] for s in io["outputs"]] == built["outs"]
    c_names = [s["c_name"] for s in (*io["inputs"], *io["outputs"])]
    assert len(set(c_names)) == len(c_names)
    assert all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", n) for n in c_names)
    internal = {n for n, b in built["result"].plan.buffers.items()
                if b.kind not in ("input", "output")}
    assert not internal & set(c_names)


def test_outputs_match_the_int8_reference_and_onnxruntime(built, tmp_path):
    result, path = built["result"], built["path"]
    inputs = _int8_inputs(result, seed=1)
    proc = _run_harness(result.out_dir, inputs, tmp_path / "out")
    assert proc.returncode == 0
    ours = {s["name"]: np.fromfile(tmp_path / "out" / f"output_{i}.bin", np.int8)
            .reshape(s["shape"]) for i, s in enumerate(result.io["outputs"])}
    reference = run_int8_reference(str(path), inputs)
    for name in built["outs"]:
        np.testing.assert_array_equal(ours[name], reference[name])
    feeds = {s["name"]: (inputs[s["name"]].astype(np.float32) - s["zero_point"])
             * np.float32(s["scale"]) for s in result.io["inputs"]}
    sess = ort.InferenceSession(path.read_bytes(), providers=["CPUExecutionProvider"])
    for spec, ref in zip(result.io["outputs"], sess.run(built["outs"], feeds), strict=True):
        ref_q = np.clip(np.round(ref / spec["scale"]) + spec["zero_point"], -128, 127)
        diff = np.abs(ours[spec["name"]].astype(np.int64) - ref_q.astype(np.int64))
        assert diff.max() <= 1 and (diff == 0).mean() >= 0.99, (spec["name"], diff.max())


def test_trigraphs_stay_literal_with_trigraphs_enabled(build_case):
    """``-trigraphs`` (what ``-std=c99`` implies) must not turn a name's ``??/`` into code."""
    built = build_case("injection")
    proc = _make(built["result"].out_dir, "BUILD=build-trigraphs",
                 "CFLAGS=-std=c99 -trigraphs -O1 -Wtrigraphs")
    assert proc.returncode == 0 and "warning" not in proc.stderr.lower(), proc.stderr


def test_json_report_escapes_a_hostile_output_folder(build_case, tmp_path):
    """Quotes, backslashes, newlines and bytes that are not UTF-8 in OUT_DIR."""
    built = build_case("text")
    result = built["result"]
    folder = bytes(tmp_path) + b'/q"u\\o\nte \xc3\xa9 bad\xff'
    Path(folder.decode("utf-8", "surrogateescape")).mkdir()
    in_specs, _ = read_io(result.out_dir)
    files = []
    for i, s in enumerate(in_specs):
        f = tmp_path / f"in_{i}.bin"
        f.write_bytes(_int8_inputs(result)[s.name].tobytes())
        files.append(bytes(f))
    proc = subprocess.run([bytes(result.out_dir / "build" / "host_main"), b"1", folder,
                           *files], capture_output=True)
    assert proc.returncode == 0, proc.stdout
    report = json.loads(proc.stdout.decode("ascii"))
    expected = folder.decode("utf-8", "replace") + "/output_0.bin"
    assert report["outputs"][0]["file"] == expected
    assert [o["name"] for o in report["outputs"]] == built["outs"]


def test_failure_report_escapes_its_detail(build_case, tmp_path):
    built = build_case("text")
    exe = built["result"].out_dir / "build" / "host_main"
    proc = subprocess.run([str(exe), "1", str(tmp_path), 'miss"ing\n\\ñ.bin', "x.bin"],
                          capture_output=True)
    assert proc.returncode == 1
    report = json.loads(proc.stdout.decode("ascii"))
    assert report["status"] == "QANAS_ERROR_BAD_ARGUMENT"
    assert report["error"].endswith('miss"ing\n\\ñ.bin')


def test_unique_identifiers_are_ascii_deterministic_and_distinct():
    names = ["x-in", "x_in", "x.in", "", "9lives", "é", "const_3", "k12_out1", "workspace_0",
             "output_2", "a" * 100, "a" * 100 + "b", CTOR, ERROR, TRIGRAPH, UNICODE]
    first = unique_identifiers(names, taken=["x_in_3"])
    assert first == unique_identifiers(names, taken=["x_in_3"])
    assert len(set(first)) == len(first) and "x_in_3" not in first
    for ident in first:
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", ident), ident
        assert len(ident) <= MAX_IDENTIFIER + len("t_") + len("_99")
    assert first[:3] == ["x_in", "x_in_2", "x_in_4"]
    assert first[4:10] == ["t_9lives", "_", "t_const_3", "t_k12_out1", "t_workspace_0",
                           "t_output_2"]


@pytest.mark.parametrize("text", ['"', "\\", "??/", "??=", "\n", "\0x", "é名😀", "%s%n", CTOR,
                                  b"path\xff\xfe".decode("utf-8", "surrogateescape")])
def test_c_string_literal_holds_the_exact_bytes(text, tmp_path):
    require_tools("gcc")
    src = tmp_path / "lit.c"
    src.write_text("#include <stdio.h>\n#include <string.h>\n"
                   f"static const char k[] = {c_string_literal(text)};\n"
                   "int main(void) { fwrite(k, 1, sizeof(k) - 1, stdout); return 0; }\n")
    exe = tmp_path / "lit"
    build = subprocess.run(["gcc", "-std=c99", "-trigraphs", "-Wall", "-Wextra", "-Werror",
                            str(src), "-o", str(exe)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr
    out = subprocess.run([str(exe)], capture_output=True).stdout
    assert out == text.encode("utf-8", "surrogateescape")


def test_harness_frames_decode_percent_encoded_names():
    name = "a b%\n@QANAS END status=QANAS_OK é"
    encoded = "".join(chr(b) if 0x21 <= b <= 0x7E and b != 0x25 else f"%{b:02X}"
                      for b in name.encode())
    crc = zlib.crc32(b"\x01\x02")
    report = parse_report(f"@QANAS BEGIN proto=1\n@O 0 2 {crc:08x} {encoded}\n"
                          "@D 0 0 0102\n@QANAS END status=QANAS_OK\n")
    assert report.output_names == {0: name} and report.outputs == {0: b"\x01\x02"}


@pytest.mark.toolchain
def test_firmware_harness_reports_hostile_names(tmp_path):
    """The injection case on Cortex-M4 under QEMU: clean -Werror build, names intact."""
    require_tools("gcc", "arm-none-eabi-gcc", "qemu-system-arm")
    from runtime.runners.firmware_base import HostReferenceRunner
    from runtime.runners.qemu import QemuRunner

    ins, outs, parts = CASES["injection"]
    path = _save(tmp_path, parts, qdq_two_branch_model(ins, outs))
    compiled = compile_model(str(path), "cortex-m4", tmp_path / "project")
    inputs = _int8_inputs(compiled)
    result = QemuRunner("cortex-m4").run(compiled.out_dir, inputs)  # -Werror firmware build
    assert result.protocol["output_names"] == outs
    expected = HostReferenceRunner().run(compiled.out_dir, inputs).outputs
    assert set(result.outputs) == set(outs) == set(expected)
    for name in outs:
        np.testing.assert_array_equal(result.outputs[name], expected[name])
