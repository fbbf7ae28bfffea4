"""Vela on real models: its summary CSV, per-layer CSV and log read into `VelaReport`.

Every file parsed here is written by Vela in the test (never hand-written): a float
model shipped with tflite-micro (every operator stays on the CPU), an int8 conv exported
by `compiler.tflite` (everything on the NPU) and a subnet whose x4 half-pixel bilinear
upsampling Vela refuses.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from compiler.errors import CompilerError
from compiler.npu import VelaError, VelaOutputError, run_vela
from compiler.npu.model_info import read_model_info
from compiler.npu.report import parse_op_counts
from targets import get_target

U55 = get_target("ethos-u55-128")


def _float_model() -> Path:
    import tflite_micro

    path = Path(tflite_micro.__file__).parent / "python" / "tflite_micro" / "sine_float.tflite"
    assert path.is_file(), "tflite-micro ships sine_float.tflite; reinstall tflite-micro"
    return path


def _csv_rows(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_float_model_every_operator_on_the_cpu_with_vela_reason(tmp_path):
    result = run_vela(_float_model(), U55, tmp_path / "vela")
    r = result.report
    cpu_rows = [row for row in _csv_rows(result.per_layer_csv) if row["Target"] == "CPU"]
    assert (r.npu_ops, r.cpu_ops, r.cpu_op_share) == (0, len(cpu_rows), 1.0)
    assert [c.tensor for c in r.cpu_fallback] == [row["Name"] for row in cpu_rows]
    assert [c.op for c in r.cpu_fallback] == [row["Original Operator"] for row in cpu_rows]
    assert all("Float32" in c.reason for c in r.cpu_fallback)
    assert not r.fully_on_npu and r.total_cycles == 0
    assert r.estimate_label == f"estimate:vela-{r.vela_version}"


@pytest.fixture(scope="module")
def int8_conv(tmp_path_factory):
    from compiler.tflite import export_tflite
    from tests.support.qdq_models import brevitas_conv_model

    folder = tmp_path_factory.mktemp("conv")
    onnx_path = brevitas_conv_model(folder, in_ch=16, out_ch=32, size=32)
    return Path(export_tflite(str(onnx_path), folder / "conv.tflite").path)


@pytest.mark.slow
def test_int8_conv_runs_on_the_npu_and_figures_are_in_our_units(int8_conv, tmp_path):
    result = run_vela(int8_conv, U55, tmp_path / "vela")
    r = result.report
    summary = _csv_rows(result.summary_csv)[0]
    assert r.fully_on_npu and r.cpu_ops == 0 and r.npu_ops >= 1 and r.cpu_op_share == 0.0
    assert r.total_cycles >= r.npu_cycles > 0
    assert r.latency_s == pytest.approx(r.total_cycles / U55.npu_config.clock_hz)
    assert r.latency_s == pytest.approx(float(summary["inference_time"]), rel=1e-6)
    assert r.sram_bytes == round(float(summary["sram_memory_used"]) * 1024) > 0
    assert r.feature_map_bytes == r.sram_bytes  # Shared_Sram: the arena is in SRAM
    assert r.model_bytes == result.optimized_tflite.stat().st_size
    assert r.macs == 32 * 32 * 32 * 16 * 9  # HxWxCout x Cin x k² of the 3x3 conv
    assert (r.accelerator, r.system_config, r.memory_mode) == (
        "ethos-u55-128", "Ethos_U55_High_End_Embedded", "Shared_Sram")
    info = read_model_info(result.optimized_tflite)
    assert info.custom_ops == ("ethos-u",) and info.cpu_ops == ()
    assert sum(x.cycles for x in r.layers if x.target == "NPU") > 0


@pytest.mark.slow
def test_size_strategy_never_uses_more_sram(int8_conv, tmp_path):
    perf = run_vela(int8_conv, U55, tmp_path / "p", "Performance").report
    size = run_vela(int8_conv, U55, tmp_path / "s", "Size").report
    assert (perf.optimise, size.optimise) == ("Performance", "Size")
    assert size.sram_bytes <= perf.sram_bytes
    assert size.protocol()["optimise"] == "Size"


@pytest.mark.slow
def test_unsupported_upsampling_is_named_with_vela_reason(tmp_path):
    from qanas.cost.subnet_export import SubnetExporter
    from qanas.space import get_space
    from tests.support.npu_toy_space import register_npu_toy

    register_npu_toy()
    space = get_space("npu-toy")
    cfg = space.resolve("npu-toy:k3_k3_x4")
    exported = SubnetExporter(space, (16, 16), 4).export(cfg, tmp_path / "m")
    result = run_vela(exported.tflite, U55, tmp_path / "vela")
    r = result.report
    assert [c.op for c in r.cpu_fallback] == ["ResizeBilinear"]
    fallback = r.cpu_fallback[0]
    assert "scale-factor=4" in fallback.reason and "2x" in fallback.reason
    cpu_rows = [row["Name"] for row in _csv_rows(result.per_layer_csv) if row["Target"] == "CPU"]
    assert cpu_rows == [fallback.tensor]
    assert r.cpu_op_share == pytest.approx(1 / (r.npu_ops + 1))
    assert read_model_info(result.optimized_tflite).cpu_ops == ("RESIZE_BILINEAR",)


def test_a_cpu_target_is_refused_with_the_npu_names(tmp_path):
    with pytest.raises(CompilerError, match="ethos-u55-128"):
        run_vela(_float_model(), get_target("cortex-m55"), tmp_path / "v")


def test_bad_strategy_and_missing_model_are_refused(tmp_path):
    with pytest.raises(CompilerError, match="Performance, Size"):
        run_vela(_float_model(), U55, tmp_path / "v", optimise="Fast")
    with pytest.raises(FileNotFoundError, match="export_tflite"):
        run_vela(tmp_path / "none.tflite", U55, tmp_path / "v")


def test_vela_failure_carries_its_log_and_leaves_nothing(tmp_path):
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"not a flatbuffer at all")
    with pytest.raises(VelaError, match="Vela failed on .*exit"):
        run_vela(bad, U55, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bad.tflite"]


def test_log_without_operator_counts_is_refused():
    with pytest.raises(VelaOutputError, match="--show-cpu-operations"):
        parse_op_counts("Network summary for x\n")
