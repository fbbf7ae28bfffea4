"""`run_demo`: the whole qanas pipeline on the embedded default, as one reproducible run.

1. generate the synthetic segmentation dataset (on the fly, seeded);
2. train a FairNAS supernet in float, then a few steps with int8 fake-quant (QAT-aware);
3. search it with pymoo NSGA-II for the target (int8 mIoU, latency, peak SRAM; the
   target's SRAM and flash as hard constraints), every subnet scored on Brevitas int8
   mIoU; with ``bits="w4w8"`` each searchable conv's weight bits (4 or 8) are searched
   too, with weight flash as a fourth objective;
4. check the search's latency figures against measured runs on the target (QEMU;
   skipped with ``latency_subnets=0``);
5. pick the knee of the front and fine-tune it briefly with QAT;
6. export ONNX QDQ and TFLite, compile with TVM to integer-only C for the target;
7. host fidelity: compiled C vs onnxruntime and the NumPy integer reference, and
   deployed-integer vs fake-quant mIoU;
8. firmware on each QEMU Cortex-M target (bit-exact with the host, per-kernel timing on
   the target);
9. Vela for the Ethos-U NPU (estimates; skipped for a chosen subnet with 4-bit weights);
10. the HTML report.

Every figure in ``results.json`` and the report is measured in this run.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path

import torch

from qanas.demo.config import DemoConfig
from qanas.utils import atomic_write_json, prepare_output_dir, write_run_metadata


class _Stages:
    """Times each stage and prints it on stderr."""

    def __init__(self):
        self.log: list[dict] = []
        self.start = time.perf_counter()
        self._t = self.start

    def begin(self) -> None:
        self._t = time.perf_counter()

    def end(self, name: str, **info) -> None:
        entry = {"stage": name, "seconds": round(time.perf_counter() - self._t, 2), **info}
        self.log.append(entry)
        print(f"[qanas demo] {name}: {entry['seconds']} s", file=sys.stderr, flush=True)

    def total(self) -> float:
        return round(time.perf_counter() - self.start, 1)


def _protocol(config: DemoConfig) -> dict:
    from qanas.utils.io import versions

    return {"versions": versions(), "seed": config.seed,
            "image_size": list(config.image_size), "dataset": config.dataset,
            "space": config.space, "target": config.target,
            "host": {"cpu": platform.processor() or platform.machine(),
                     "cores": os.cpu_count(), "torch_threads": torch.get_num_threads()}}


def npu_target_for(config: DemoConfig, arch: str) -> str | None:
    """The Ethos-U target of the NPU stage: None when there is none, or when `arch` has 4-bit
    weights (Vela compiles int8 weights only; the stage is skipped with a message)."""
    from qanas.space.bits import parse_config, searched_bits

    if not config.npu_target:
        return None
    bits = searched_bits(parse_config(arch))
    if bits is not None and 4 in bits:
        print(f"[qanas demo] NPU stage skipped: the chosen subnet has 4-bit weights and Vela "
              f"({config.npu_target}) compiles int8 weights only", file=sys.stderr, flush=True)
        return None
    return config.npu_target


def run_demo(config: DemoConfig, out_dir: str | Path, force: bool = False) -> dict:
    """Runs the pipeline described in the module docstring; returns the results dict."""
    from qanas.demo.deploy import (
        check_project_folders,
        compile_first_fitting,
        firmware_runs,
        host_fidelity,
        quantize_input,
    )
    from qanas.demo.latency import spread_over_latency, validate_latency
    from qanas.demo.qat import qat_finetune
    from qanas.demo.search import search_front
    from qanas.demo.train import float_supernet_phase, qat_supernet_phase, training_summary
    from qanas.quant import QuantSpec, export_qdq
    from qanas.quant.qat import strip_qat
    from qanas.score import SubnetScorer
    from qanas.space.bits import parse_config
    from runtime.runners.base import read_io

    out = prepare_output_dir(out_dir, force)
    check_project_folders(out, config.latency_subnets)
    write_run_metadata(out, config.to_dict(), config.seed)
    stages = _Stages()

    float_run = float_supernet_phase(config, out, force)
    stages.end("train FairNAS supernet (float)", epochs=float_run.result["epochs"])
    qat_run = None
    final = float_run.trainer
    if config.qat_supernet_steps > 0:
        stages.begin()
        qat_run = qat_supernet_phase(float_run, config.qat_supernet_steps, out, force)
        final = qat_run.trainer
        strip_qat(final.model)  # scoring quantizes with Brevitas, as deployment does
        stages.end("train FairNAS supernet (QAT)", steps=config.qat_supernet_steps)
    checkpoint = Path((qat_run or float_run).result["checkpoint"])

    stages.begin()
    scorer = SubnetScorer(final.model, final.calib_batches, tuple(final.val_batches),
                          QuantSpec(), image_size=tuple(config.image_size))
    search = search_front(scorer, config, out, checkpoint, force)
    stages.end("NSGA-II search", evaluated=len(search.result.records),
               scored=search.result.scored, front=len(search.result.front))

    example = scorer.val_batches[0][0][:1]
    latency_check = None
    if config.latency_subnets > 0:
        stages.begin()
        checked = spread_over_latency(list(search.result.front), search.knee,
                                      config.latency_subnets)
        latency_check = validate_latency(checked, scorer, search.hw, config.target,
                                         out / "latency", example, config.optimise)
        stages.end("latency check on the target", subnets=len(checked))

    stages.begin()
    tuned: dict = {}

    def export(arch: str, path: Path):
        qmodel, section = qat_finetune(final, scorer, parse_config(arch), config)
        tuned.update(section)
        export_qdq(qmodel, example, path)
        return qmodel

    order = [search.knee] + [r for r in search.result.front if r.arch != search.knee.arch]
    chosen = compile_first_fitting(order, export, config.target, out, config.optimise)
    compiled = chosen["compiled"]
    stages.end("QAT fine-tune + export QDQ + compile", target=config.target,
               qat_steps=config.qat_steps)

    stages.begin()
    fidelity = host_fidelity(chosen, scorer, config.fidelity_images)
    stages.end("host fidelity")

    stages.begin()
    (inp,), _ = read_io(compiled.out_dir)
    firmware = firmware_runs(compiled.out_dir, tuple(config.firmware_targets),
                             quantize_input(example, inp.scale, inp.zero_point),
                             profile_target=config.target)
    stages.end("firmware in QEMU", targets=list(config.firmware_targets))

    npu = None
    npu_target = npu_target_for(config, chosen["record"].arch)
    if npu_target:
        from qanas.demo.npu import npu_stage

        stages.begin()
        npu = npu_stage(chosen["onnx"], npu_target, out / "npu")
        stages.end("TFLite export + Vela", target=npu_target)

    record = chosen["record"]
    results = {
        "run_dir": str(out),
        "space": config.space,
        "target": config.target,
        "protocol": _protocol(config),
        "training": training_summary(float_run, qat_run, config.qat_supernet_steps),
        "search": search.section,
        "lut_validation": latency_check,
        "chosen": {
            "arch": record.arch,
            "knee": record.arch == search.knee.arch,
            "miou_int8": tuned.get("miou_int8_after", record.miou),
            "miou_int8_search": record.miou,
            "miou_fp32": record.miou_fp32,
            "macs": record.macs,
            "params": record.params,
            "latency": {"value": record.latency, "unit": record.latency_unit,
                        "source": record.latency_source},
            "onnx": str(chosen["onnx"]),
            "tflite": None if npu is None else npu.get("tflite"),
            "project": str(compiled.out_dir),
            **compiled.summary(),
            "rejected": chosen["rejected"],
        },
        "qat": tuned,
        "fidelity": fidelity,
        "firmware": firmware,
        "memory": {"arena_bytes": compiled.summary()["arena_bytes"],
                   "lower_bound_bytes": compiled.summary()["lower_bound_bytes"],
                   "project": str(compiled.out_dir)},
        "npu": npu,
        "stages": stages.log,
    }
    stages.begin()
    from qanas.report import build_report

    results["seconds"] = stages.total()
    atomic_write_json(out / "results.json", results)
    report = build_report(out, results)
    stages.end("HTML report")
    results["report"] = str(report)
    results["stages"] = stages.log
    results["seconds"] = stages.total()
    atomic_write_json(out / "results.json", results)
    return results


def format_table(results: dict) -> str:
    """A short human-readable summary of `results`."""
    c, f, q = results["chosen"], results["fidelity"], results.get("qat") or {}
    search, lat = results["search"], results["lut_validation"]
    lines = [
        f"run directory     {results['run_dir']}",
        f"supernet          {results['space']}, {results['training']['epochs']} float epochs "
        f"+ {results['training']['qat_steps']} QAT steps, majority-class baseline mIoU "
        f"{results['training']['baseline_miou']:.3f}",
        f"search            NSGA-II for {search['target']} (--optimise "
        f"{search.get('optimise', 'size')}): {len(search['evaluated'])} subnets, "
        f"front {len(search['front'])}",
        "latency check     skipped (--latency-subnets 0)" if lat is None else
        f"latency check     {lat['source']} vs measured {lat['measured_unit']} on "
        f"{lat['n']} subnets: MAPE {lat['mape']:.2f}%, within ±10% {100 * lat['within_10']:.0f}%",
        f"chosen (knee)     {c['arch']}",
        f"  int8 mIoU       {c['miou_int8']:.3f} after QAT (search {c['miou_int8_search']:.3f}, "
        f"before QAT {q.get('miou_int8_before', float('nan')):.3f}), {c['macs'] / 1e6:.1f} MMACs",
        f"  arena / LB      {c['arena_bytes']} / {c['lower_bound_bytes']} bytes, "
        f"weights {c['weights_bytes']} bytes, {c['kernels']} kernels",
        f"host C vs ORT     {100 * f['bit_exact_fraction']:.3f}% bit-exact, max "
        f"{f['max_lsb_diff']} LSB; vs NumPy int8 reference "
        f"{100 * f['bit_exact_fraction_integer_reference']:.3f}%",
        f"fidelity          deployed mIoU {f['miou_deployed_int8']:.3f} vs fake-quant "
        f"{f['miou_fake_quant']:.3f} on {f['images']} images",
    ]
    from qanas.report.architecture import weight_bits_of

    bits = weight_bits_of(c["arch"])
    if bits:
        lines.insert(7, f"  weight bits     {bits}")
    for row in results["firmware"]:
        if not row["fits"]:
            lines.append(f"{row['target']:<17} does not fit: {row['reason']}")
            continue
        lat_fw = row["latency"] or [0]
        lines.append(f"{row['target']:<17} {int(lat_fw[0]):>12,} {row['unit']}, flash "
                     f"{row['flash_bytes']} B, outputs match host: {row['outputs_match_host']}")
    npu = results.get("npu")
    if npu:
        lines.append(f"{npu['target']:<17} {npu['cycles']:>12,} NPU cycles (Vela estimate), "
                     f"SRAM {npu['sram_bytes']} B, CPU fallback ops {len(npu['cpu_fallback'])}")
    lines.append(f"report            {results.get('report')}")
    lines.append(f"total             {results['seconds']} s")
    return "\n".join(lines)
