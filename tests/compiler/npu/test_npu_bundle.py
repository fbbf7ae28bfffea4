"""`qanas deploy|bench --target ethos-u…`: the TFLite Micro bundle and Vela's estimates.

The plain-C files of the bundle (model data, driver bring-up, the C API header) are
compiled for Cortex-M55 with -Werror against `tests/compiler/npu/npu_driver_api/ethosu_driver.h`,
declarations that mirror the Arm Ethos-U core driver's documented API. `qanas_npu.cc`
needs TFLite Micro's headers, which are not available offline here (see
docs/npu-ethos-u.md).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from compiler.npu.bundle import TFLM_OVERHEAD_BYTES, resolver_method
from qanas.cli.main import main
from tests.support.tools import require_tools

pytestmark = pytest.mark.slow
DRIVER_API = Path(__file__).parent / "npu_driver_api"
M55 = ["arm-none-eabi-gcc", "-mcpu=cortex-m55", "-mthumb", "-mfloat-abi=hard", "-std=c99",
       "-O2", "-Wall", "-Wextra", "-Werror"]


@pytest.fixture(scope="module")
def onnx_model(tmp_path_factory):
    from tests.support.qdq_models import brevitas_conv_model

    return brevitas_conv_model(tmp_path_factory.mktemp("m"), in_ch=8, out_ch=16, size=16)


@pytest.fixture(scope="module")
def bundle(onnx_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("b") / "bundle"
    assert main(["deploy", str(onnx_model), "--target", "ethos-u55-128", "--out", str(out),
                 "--json"]) == 0
    return out


def test_deploy_writes_the_bundle(bundle, capsys):
    names = {p.name for p in bundle.iterdir()}
    assert {"model_vela.tflite", "model_data.c", "model_data.h", "qanas_npu.h", "qanas_npu.cc",
            "ethosu_init.c", "README.md", "bundle.json", "vela"} <= names
    meta = json.loads((bundle / "bundle.json").read_text())
    vela = meta["vela"]
    assert vela["estimate"] is True and vela["cpu_ops"] == 0 and meta["cpu_ops"] == []
    expected = -(-(vela["feature_map_bytes"] + TFLM_OVERHEAD_BYTES) // 16) * 16
    assert meta["arena_bytes"] == expected and meta["fast_memory_bytes"] == 0
    header = (bundle / "qanas_npu.h").read_text()
    assert f"#define QANAS_NPU_ARENA_BYTES {expected}u" in header
    assert meta["inputs"][0]["shape"] == [1, 16, 16, 8]  # NHWC int8
    assert "QANAS_NPU_INPUT0_SCALE" in header and "QANAS_NPU_OUTPUT0_ZERO_POINT" in header
    glue = (bundle / "qanas_npu.cc").read_text()
    assert "resolver.AddEthosU()" in glue and "kNumOperators = 1;" in glue
    readme = (bundle / "README.md").read_text()
    assert "ethosu_init" in readme and str(vela["total_cycles"]) in readme


def test_model_array_holds_the_optimised_model(bundle):
    text = (bundle / "model_data.c").read_text()
    assert '__attribute__((aligned(16), section(".qanas_npu_model")))' in text
    body = text.split("= {", 1)[1]
    data = bytes(int(h, 16) for h in re.findall(r"0x([0-9a-f]{2})", body))
    assert data == (bundle / "model_vela.tflite").read_bytes()


@pytest.mark.toolchain
def test_plain_c_compiles_for_cortex_m55(bundle, tmp_path):
    require_tools("arm-none-eabi-gcc", "arm-none-eabi-objdump")
    (tmp_path / "api.c").write_text('#include "qanas_npu.h"\n#include "model_data.h"\n'
                                    "size_t api_check(void) { size_t n = 0;\n"
                                    "  return qanas_npu_input(0, &n) ? n : "
                                    "QANAS_NPU_MODEL_BYTES; }\n")
    objs = []
    for src in (bundle / "model_data.c", bundle / "ethosu_init.c", tmp_path / "api.c"):
        obj = tmp_path / (src.stem + ".o")
        subprocess.run([*M55, f"-I{bundle}", f"-I{DRIVER_API}",
                        "-DQANAS_ETHOSU_BASE_ADDRESS=0x48102000", "-c", str(src), "-o",
                        str(obj)], check=True, capture_output=True, text=True)
        objs.append(obj)
    sections = subprocess.run(["arm-none-eabi-objdump", "-h", str(objs[0])], check=True,
                              capture_output=True, text=True).stdout
    line = next(ln for ln in sections.splitlines() if ".qanas_npu_model" in ln).split()
    assert int(line[2], 16) == (bundle / "model_vela.tflite").stat().st_size
    assert sections.split(".qanas_npu_model", 1)[1].split("\n")[0].split()[-1] == "2**4"


@pytest.mark.toolchain
def test_driver_glue_refuses_to_build_without_a_base_address(bundle, tmp_path):
    require_tools("arm-none-eabi-gcc")
    proc = subprocess.run([*M55, f"-I{bundle}", f"-I{DRIVER_API}", "-c",
                           str(bundle / "ethosu_init.c"), "-o", str(tmp_path / "x.o")],
                          capture_output=True, text=True)
    assert proc.returncode != 0 and "QANAS_ETHOSU_BASE_ADDRESS" in proc.stderr


def test_deploy_refuses_an_existing_bundle_without_force(bundle, onnx_model, capsys):
    capsys.readouterr()
    assert main(["deploy", str(onnx_model), "--target", "ethos-u55-128", "--out", str(bundle),
                 "--json"]) != 0
    assert "--force" in json.loads(capsys.readouterr().out)["error"]


def test_u65_bundle_hands_the_driver_its_fast_memory(onnx_model, tmp_path, capsys):
    out = tmp_path / "u65"
    assert main(["deploy", str(onnx_model), "--target", "ethos-u65-256", "--out", str(out),
                 "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["fast_memory_bytes"] == 384 * 1024  # Dedicated_Sram_384KB's cache
    assert "#define QANAS_NPU_FAST_MEMORY_BYTES 393216u" in (out / "qanas_npu.h").read_text()
    assert result["vela"]["protocol"]["memory_mode"] == "Dedicated_Sram_384KB"


def test_bench_reports_vela_estimates_with_protocol(onnx_model, tmp_path, capsys):
    capsys.readouterr()
    assert main(["bench", str(onnx_model), "--target", "ethos-u55-128", "--out",
                 str(tmp_path / "b"), "--optimise", "Size", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["estimate"] is True and r["runner"] == "vela" and r["runs"] == 0
    assert r["latency"]["unit"] == "cycles" and r["latency"]["median"] == r["cycles"]["total"] > 0
    assert r["latency_s"] == pytest.approx(r["cycles"]["total"] / 500e6)
    assert r["cpu_fallback"] == [] and r["cpu_op_share"] == 0.0 and r["flash_bytes"] > 0
    p = r["protocol"]
    assert (p["accelerator"], p["system_config"], p["memory_mode"], p["optimise"]) == (
        "ethos-u55-128", "Ethos_U55_High_End_Embedded", "Shared_Sram", "Size")
    assert p["vela_version"] and p["estimate"] is True


def test_bench_out_reuses_only_its_own_folder(onnx_model, tmp_path, capsys):
    """`bench --out DIR --force` replaces Vela's subfolder only in a folder bench marked."""
    users = tmp_path / "mine"
    (users / "vela-Size").mkdir(parents=True)
    (users / "vela-Size" / "notes.txt").write_text("keep")
    assert main(["bench", str(onnx_model), "--target", "ethos-u55-128", "--out", str(users),
                 "--optimise", "Size", "--force", "--json"]) == 2
    assert "marker" in json.loads(capsys.readouterr().out)["error"]
    assert (users / "vela-Size" / "notes.txt").read_text() == "keep"
    ours = tmp_path / "ours"
    for force in ([], ["--force"]):
        assert main(["bench", str(onnx_model), "--target", "ethos-u55-128", "--out", str(ours),
                     "--optimise", "Size", "--json", *force]) == 0
        capsys.readouterr()


def test_bench_refuses_a_compiled_c_project_for_an_npu(tmp_path, capsys):
    assert main(["bench", str(tmp_path), "--target", "ethos-u55-128", "--json"]) != 0
    assert ".onnx" in json.loads(capsys.readouterr().out)["error"]


@pytest.mark.parametrize("builtin, method", [
    ("CONV_2D", "AddConv2D"), ("DEPTHWISE_CONV_2D", "AddDepthwiseConv2D"),
    ("RESIZE_BILINEAR", "AddResizeBilinear"), ("AVERAGE_POOL_2D", "AddAveragePool2D"),
    ("HARD_SWISH", "AddHardSwish"), ("L2_NORMALIZATION", "AddL2Normalization")])
def test_resolver_method_names(builtin, method):
    assert resolver_method(builtin) == method
