"""The HTML report of a run (`qanas.report`, `qanas report`).

The results dict is assembled from real computations wherever they are cheap: a real
search space and its hardware cost model (latency, SRAM, flash of sampled subnets), the
real LUT statistics and rank correlation functions, and a real compiled C project (its
compile.json and plan.json). mIoU values and firmware timings, which would need training
or an emulator, are seeded test data.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from qanas.report import (
    SECTION_KEYS,
    ReportError,
    build_report,
    build_report_sections,
    memory_profile,
    subnet_blocks,
)
from qanas.report.sections_model import lut_section
from tests.support.tools import require_tools

IMAGE_SIZE = (32, 64)
NUM_CLASSES = 6
SPACE = "squeezenas-small"
TARGET = "cortex-m7"


# -- fast: the pieces ---------------------------------------------------------------------
def test_blocks_follow_the_arch_string_and_its_layer_specs():
    from qanas.space import get_space

    space = get_space(SPACE)
    cfg = space.sample(np.random.default_rng(3))
    labels = list(cfg.labels())
    labels[5] = "skip"  # an identity superblock (24 -> 24 channels, stride 1)
    arch = f"{SPACE}:" + "_".join(labels)
    blocks = subnet_blocks(arch, IMAGE_SIZE, NUM_CLASSES)
    names = [b.name for b in blocks]
    assert names[0] == "stem" and names[-1] == "upsample"
    assert [n for n in names if n.startswith("blocks.")] == [f"blocks.{i}" for i in range(20)]
    identity = next(b for b in blocks if b.name == "blocks.5")
    assert identity.kind == "identity" and identity.macs == 0
    assert identity.choice.endswith("= skip")
    # every MAC of the subnet is in exactly one block
    costs = space.costs(space.resolve(arch), IMAGE_SIZE, NUM_CLASSES)
    assert sum(b.macs for b in blocks) == costs["macs"]
    assert sum(b.params for b in blocks) == costs["params"]
    chosen_k = {b.name: b.summary.split()[0] for b in blocks if b.kind == "inverted residual"}
    for i, label in enumerate(labels):
        if label != "skip":  # the kernel size drawn is the one of the arch string
            assert chosen_k[f"blocks.{i}"] == label[:2], (i, label)
    with pytest.raises(ReportError, match="does not parse"):
        subnet_blocks(f"{SPACE}:k9e9", IMAGE_SIZE)


def test_memory_profile_counts_aligned_live_bytes():
    plan = {
        "calls": [{"index": i, "kernel": k} for i, k in enumerate(("conv", "pad", "add"))],
        "buffers": [
            {"name": "x", "kind": "input", "size": 100, "first": 0, "last": 0},
            {"name": "w", "kind": "constant", "size": 4096, "first": 0, "last": 2},
            {"name": "a", "kind": "intermediate", "size": 64, "first": 0, "last": 2},
            {"name": "b", "kind": "intermediate", "size": 20, "first": 1, "last": 2},
            {"name": "y", "kind": "output", "size": 16, "first": 2, "last": 2},
        ],
        "memory": {"offsets": {"x": 0, "a": 112, "b": 0, "y": 32}, "arena_bytes": 176,
                   "lower_bound_bytes": 176, "planner": "greedy"},
    }
    profile = memory_profile(plan)
    # 16-byte aligned: x 112, a 64, b 32, y 16; the constant is in flash, not the arena
    assert profile.live_bytes == (176, 96, 112)
    assert profile.recomputed_lower_bound == 176 == profile.lower_bound_bytes
    assert profile.peak_step == 0 and len(profile.placements) == 4
    with pytest.raises(ReportError, match="recompile"):
        memory_profile({"calls": []})


def test_absent_sections_are_reported_and_bad_runs_explained(tmp_path):
    run = tmp_path / "run"
    with pytest.raises(ReportError, match="does not exist"):
        build_report(run)
    run.mkdir()
    with pytest.raises(ReportError, match="qanas demo"):
        build_report(run)
    (run / "results.json").write_text("{not json")
    with pytest.raises(ReportError, match="not valid JSON"):
        build_report(run)
    (run / "results.json").write_text(json.dumps({"space": SPACE, "target": "<b>m7</b>"}))
    path, sections = build_report_sections(run)
    page = path.read_text()
    missing = [s.key for s in sections if not s.present]
    assert missing == [k for k in SECTION_KEYS if k != "protocol"]
    assert page.count("Not part of this run:") == len(missing) + 1  # + the summary line
    assert "<b>m7</b>" not in page and "&lt;b&gt;m7&lt;/b&gt;" in page
    assert "<img" not in page and "not recorded by this run" in page


def test_a_malformed_section_is_named_not_fatal(tmp_path, capsys):
    from qanas.cli.main import main

    results = {"space": SPACE, "target": TARGET, "lut_validation": {"rows": [{"predicted": 1}]},
               "qat": {"epochs": 1, "miou_int8_before": 0.3, "miou_int8_after": 0.35}}
    (tmp_path / "results.json").write_text(json.dumps(results))
    assert main(["report", str(tmp_path), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["sections"] == ["qat", "protocol"]
    assert [e["section"] for e in out["errors"]] == ["lut_validation"]
    assert "'measured'" in out["errors"][0]["error"] and "docs/report.md" in out["errors"][0]["error"]
    page = (tmp_path / "report.html").read_text()
    assert "Could not be rendered" in page and page.count("<img") == 1


def test_lut_figure_is_drawn_from_the_run():
    validation_stats = _validation_stats()

    def section(measured):
        stats = validation_stats(["a", "b", "c"], [100.0, 200.0, 300.0], measured, "cycles")
        run = load_run_dict({"lut_validation": {"target": TARGET, **stats.to_dict()}})
        return lut_section(run)

    one, two = section([104.0, 190.0, 330.0]), section([150.0, 200.0, 310.0])
    assert one.figures[0].png_base64 != two.figures[0].png_base64
    assert "cycles" in one.figures[0].unit and one.tables[0].rows[0][0] == TARGET


def test_firmware_section_lists_the_attention_steps(tmp_path):
    """A profiled firmware run of a transformer subnet gets a table of its matmul and
    softmax calls with their latency and share; a run without attention gets none."""
    from qanas.report.load import load_run
    from qanas.report.sections_deploy import firmware_section

    layers = [{"index": 0, "kernel": "fused_conv2d_add_clip", "value": 900.0},
              {"index": 1, "kernel": "qanas_matmul_s8", "value": 60.0},
              {"index": 2, "kernel": "qanas_softmax_s8", "value": 30.0},
              {"index": 3, "kernel": "fused_matmul1_add", "value": 10.0}]
    row = {"target": "cortex-m55", "fits": True, "unit": "instructions", "latency": [1000.0],
           "layers": layers}
    (tmp_path / "results.json").write_text(json.dumps({"firmware": [row]}))
    tables = firmware_section(load_run(tmp_path)).tables
    (attention,) = [t for t in tables if t.caption.startswith("Attention steps")]
    assert [r[1] for r in attention.rows] == ["qanas_matmul_s8", "qanas_softmax_s8",
                                              "fused_matmul1_add"]
    assert [r[3] for r in attention.rows] == ["6.00 %", "3.00 %", "1.00 %"]
    assert attention.caption == ("Attention steps on cortex-m55 (matmul, softmax): 3 kernel "
                                 "calls, 100 instructions, 10.00 % of the inference")
    row["layers"] = layers[:1]
    (tmp_path / "results.json").write_text(json.dumps({"firmware": [row]}))
    assert not [t for t in firmware_section(load_run(tmp_path)).tables
                if t.caption.startswith("Attention steps")]


def _validation_stats():
    """`qanas.cost.lut.validation.validation_stats`."""
    from qanas.cost.lut.validation import validation_stats

    return validation_stats


def load_run_dict(results: dict, tmp=Path("/")):
    """A RunData over an in-memory results dict (no files needed)."""
    from qanas.report.load import RunData

    return RunData(tmp, results)


# -- slow: a whole run with a real compiled project -------------------------------------
def _front(rows: list[dict]) -> list[dict]:
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

    ok = [r for r in rows if r["feasible"]]
    F = np.array([[-r["miou"], r["latency"]["value"]] for r in ok])
    return [ok[i] for i in NonDominatedSorting().do(F, only_non_dominated_front=True)]


def _search(rng) -> dict:
    from qanas.cost.hardware import HardwareCostModel, target_budgets
    from qanas.space import get_space
    from targets import get_target

    space = get_space(SPACE)
    target = get_target(TARGET)
    hw = HardwareCostModel(space, target, IMAGE_SIZE, NUM_CLASSES)
    budgets = target_budgets(target)
    configs = {c.to_str(): c for c in (space.sample(rng) for _ in range(8))}
    rows = []
    for arch, cfg in configs.items():
        p = hw.profile(cfg)
        rows.append({"arch": arch, "miou": 0.2 + 0.4 * p.macs / 6e6 + rng.normal(0, 0.02),
                     "miou_fp32": 0.25 + 0.4 * p.macs / 6e6,
                     "latency": {"value": p.latency.value, "unit": p.latency.unit,
                                 "source": p.latency.source},
                     "sram_bytes": p.sram_bytes, "flash_bytes": p.flash_bytes,
                     "macs": p.macs, "params": p.params,
                     "feasible": p.sram_bytes <= budgets["sram_bytes"]})
    front = _front(rows)
    return {"algo": "nsga2", "target": TARGET, "budget": len(rows),
            "objectives": ["miou", "latency"], "constraints": budgets, "evaluated": rows,
            "front": front, "chosen_arch": front[0]["arch"],
            "hypervolume": {"value": 0.42, "reference": [1.1, 1.1]}}


def _results(run_dir: Path, compiled, rng) -> dict:
    validation_stats = _validation_stats()
    from qanas.score.rankcorr import rank_correlation
    from qanas.utils.io import versions

    search = _search(rng)
    chosen_arch = search["chosen_arch"]
    rows = search["evaluated"]
    predicted = [r["latency"]["value"] for r in rows]
    measured = [v * (1 + rng.normal(0, 0.06)) for v in predicted]
    lut = validation_stats([r["arch"] for r in rows], predicted, measured, "cycles")
    truth = [r["miou"] + rng.normal(0, 0.03) for r in rows]
    corr = rank_correlation([r["miou"] for r in rows], truth, ks=(3,)).to_dict()
    kernels = json.loads((compiled.out_dir / "compile.json").read_text())["kernel_names"]
    layers = [{"index": i, "kernel": k, "value": float(1000 + 37 * i)}
              for i, k in enumerate(kernels)]
    history = [{"epoch": e, "loss": 1.5 / e, "lr": 0.05, "baseline_miou": 0.12,
                "val_miou": {"seed": 0.2 + 0.05 * e, "min": 0.15 + 0.03 * e,
                             "max": 0.22 + 0.06 * e}, "seconds": 3.0} for e in (1, 2, 3)]
    chosen_row = next(r for r in rows if r["arch"] == chosen_arch)
    return {
        "run_dir": str(run_dir), "seconds": 12.5, "space": SPACE, "target": TARGET,
        "stages": [{"stage": "train FairNAS supernet", "seconds": 8.0, "epochs": 3},
                   {"stage": "export QDQ + compile", "seconds": 4.5, "target": TARGET}],
        "protocol": {"versions": versions(), "seed": 0, "image_size": list(IMAGE_SIZE),
                     "dataset": "synthetic", "num_classes": NUM_CLASSES,
                     "host": {"cpu": "x86_64 test host", "cores": os.cpu_count()}},
        "training": {"epochs": 3, "baseline_miou": 0.12, "final_loss": 0.5,
                     "val_miou": history[-1]["val_miou"], "history": history},
        "search": [search],
        "lut_validation": {"target": TARGET, **lut.to_dict()},
        "chosen": {"arch": chosen_arch, "macs": chosen_row["macs"],
                   "params": chosen_row["params"],
                   "miou_int8": chosen_row["miou"], "miou_fp32": chosen_row["miou_fp32"],
                   **compiled.summary(), "project": compiled.out_dir.name,
                   "onnx": "candidate0.onnx"},
        "qat": {"epochs": 2, "miou_int8_before": 0.41, "miou_int8_after": 0.47},
        "fidelity": {"images": 4, "bit_exact_fraction": 0.996, "max_lsb_diff": 1,
                     "reference": "onnxruntime on the same QDQ model (optimizations off)",
                     "bit_exact_fraction_integer_reference": 1.0,
                     "integer_reference": "compiler.reference NumPy int8 interpreter",
                     "miou_deployed_int8": 0.4, "miou_fake_quant": 0.401,
                     "host_latency_s_median": 0.002},
        "firmware": [
            {"target": "cortex-m4", "fits": True, "unit": "instructions",
             "latency": [float(sum(x["value"] for x in layers))] * 2, "layers": layers,
             "sram_bytes": {"arena": compiled.arena_bytes, "stack_peak": 700,
                            "static": 2048, "stack_reserved": 16384},
             "flash_bytes": 40960, "outputs_match_host": True, "repeatable": True,
             "runner": "qemu", "clock_hz": 25_000_000},
            {"target": "cortex-m55", "fits": False, "reason": "flash overflow by 3 bytes"},
        ],
        "npu": {"target": "ethos-u55", "estimate": True, "cycles": 123456,
                "latency_s": 0.000247, "sram_bytes": 30000, "flash_bytes": 50000,
                "cpu_fallback": ["RESIZE_BILINEAR"], "protocol": {"vela": "4.0"}},
        "rankcorr": {**corr, "points": [{"arch": r["arch"], "supernet_miou": r["miou"],
                                         "standalone_miou": t} for r, t in zip(rows, truth, strict=True)]},
    }


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    from compiler.driver import compile_model
    from tests.support.qdq_models import brevitas_block_model

    run_dir = tmp_path_factory.mktemp("run")
    onnx = brevitas_block_model(tmp_path_factory.mktemp("onnx"), ch=4, size=8)
    compiled = compile_model(onnx, "host", run_dir / "project0")
    results = _results(run_dir, compiled, np.random.default_rng(0))
    (run_dir / "results.json").write_text(json.dumps(results))
    return run_dir, results, compiled


def _pngs(page: str) -> list[bytes]:
    return [base64.b64decode(m) for m in re.findall(r'src="data:image/png;base64,([^"]+)"', page)]


@pytest.mark.slow
def test_every_section_renders_from_the_run(full_run):
    from PIL import Image

    run_dir, results, compiled = full_run
    path, sections = build_report_sections(run_dir)
    assert path == run_dir / "report.html"
    page = path.read_text()
    assert [s.key for s in sections if s.present] == list(SECTION_KEYS)
    figures = [f for s in sections for f in s.figures]
    # training, pareto, architecture, qat, lut, memory, fw latency, fw memory, fw layers,
    # fidelity, rankcorr
    assert len(figures) == 11
    pngs = _pngs(page)
    assert len(pngs) == page.count("<img") == len(figures)
    for png in pngs:
        with Image.open(io.BytesIO(png)) as im:
            assert im.size[0] > 300 and np.asarray(im.convert("L")).std() > 5
    for number, fig in enumerate(figures, start=1):
        assert f"Figure {number}. {fig.title}." in page
        assert fig.unit and fig.source and fig.kind in ("measured", "estimate", "derived",
                                                        "measured vs estimate")
    assert page.count("Unit:") == len(figures)
    # numbers of this run appear: arena and lower bound of the compiled project,
    # the chosen arch, the LUT MAPE, the failing firmware's reason, the seed's versions
    assert f"{compiled.arena_bytes:,} B" in page
    assert f"{compiled.lower_bound_bytes:,} B" in page
    assert results["chosen"]["arch"] in page
    assert f"{results['lut_validation']['mape']:.4g} %" in page
    assert "flash overflow by 3 bytes" in page and "RESIZE_BILINEAR" in page
    assert results["protocol"]["versions"]["torch"] in page
    assert "clock_hz" in page and "25,000,000" in page  # the firmware's own protocol
    assert "Not part of this run" not in page
    # self-contained: nothing fetched from files or the network, no scripts
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert all(src.startswith("data:image/png;base64,")
               for src in re.findall(r'src="([^"]*)"', page))
    assert "<link" not in page and "url(" not in page


@pytest.mark.slow
def test_cli_prints_rendered_and_missing_sections(full_run, tmp_path, capsys):
    from qanas.cli.main import main

    run_dir, results, _ = full_run
    partial = tmp_path / "partial"
    partial.mkdir()
    shutil.copytree(run_dir / "project0", partial / "project0")
    keep = ("run_dir", "space", "target", "chosen", "firmware", "seconds")
    (partial / "results.json").write_text(json.dumps({k: results[k] for k in keep}))
    (partial / "config.json").write_text(json.dumps(
        {"config": {"image_size": list(IMAGE_SIZE), "seed": 7, "dataset": "synthetic"},
         "seed": 7, "versions": {"qanas": "9.9.9"}}))
    assert main(["report", str(partial), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["report"] == str(partial / "report.html")
    assert out["sections"] == ["chosen", "memory", "firmware", "protocol"]
    assert out["missing"] == ["training", "search", "qat", "lut_validation", "fidelity",
                              "npu", "rankcorr"]
    page = Path(out["report"]).read_text()
    assert "9.9.9" in page and "32 × 64" in page  # protocol falls back to config.json
    assert main(["report", str(tmp_path / "nothing"), "--json"]) == 2


@pytest.mark.slow
@pytest.mark.toolchain
def test_report_renders_in_headless_chromium(full_run, tmp_path):
    from PIL import Image

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    require_tools("chromium" if browser is None or browser.endswith("chromium")
                  else "chromium-browser")
    run_dir, _, _ = full_run
    page = build_report(run_dir)
    shot = tmp_path / "report.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                    f"--screenshot={shot}", "--window-size=1280,4000",
                    page.resolve().as_uri()], check=True, capture_output=True, timeout=120)
    assert shot.is_file() and shot.stat().st_size > 50_000
    with Image.open(shot) as im:
        assert im.size == (1280, 4000)
        pixels = np.asarray(im.convert("L"), dtype=np.float64)
    assert pixels.std() > 20  # text, tables and figures, not a blank page
    assert (pixels < 128).mean() > 0.01
