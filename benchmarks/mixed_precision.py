"""All-int8 vs mixed-precision (4/8-bit weights per conv) fronts on the demo setting.

The supernet is trained as `qanas demo` trains it (synthetic data, squeezenas-small,
64x128, FairNAS float epochs then QAT-aware steps; `qanas.demo.train`) and scored as the
demo scores it (`SubnetScorer` on the demo's validation images). Two NSGA-II searches
of the same budget for the same target then run on it with the same four objectives
(int8 mIoU, latency, peak SRAM, weight flash; `qanas.demo.search.search_front`):

* ``w8``: architecture decisions only, every conv int8;
* ``w4w8``: architecture and one 4/8 weight-bit decision per searchable conv
  (`qanas.search.bits`).

Reported:

* **fronts**: weight flash, latency and int8 mIoU of each front subnet;
* **hypervolume** of both fronts (pymoo ``HV``, objectives min/max-normalised over every
  subnet either search evaluated, reference point 1.1; `search_hv.normalized_hypervolumes`);
* **equal architectures**: for every front subnet of the w4w8 search with some 4-bit
  layer, the same architecture with all weights int8 and with every searchable conv at
  4 bits, scored by the same scorer: flash saved and int8 mIoU lost against all-int8;
  the goal (issue 16) is >= 30 % less weight flash at <= 0.5 pp int8-mIoU loss;
* **deployment** of one mixed front subnet (the largest flash saving within 0.5 pp, else
  the largest saving) and of its all-int8 twin: fine-tuned with QAT at their bits as the
  demo does (`qanas.demo.qat`), exported (INT4 QDQ), compiled for the target, checked on
  the host (`qanas.demo.deploy.host_fidelity`: compiled C vs onnxruntime and the NumPy
  reference, deployed vs fake-quant mIoU; the goal is within 0.5 pp), and run in QEMU on
  the target (`firmware_runs`: instructions per inference, flash) unless
  ``--no-firmware``.

Weight flash counts every 4-bit conv packed two weights per byte (`qanas.search.bits.
BitsCostModel`; the compiler packs them in fused inverted residuals and the patch stage
too). Latency: the w8 search gives each architecture its int8 figure, the w4w8 search adds
the int4 - int8 difference of its 4-bit convs at the target's fitted int4 rates
(`qanas.cost.int4_latency`); without --no-firmware the instructions the deployed pair
retires in QEMU show what 4-bit weights cost on the target.

Run (the committed result: a supernet trained 12 float + 3 QAT-aware steps, 20 subnets per
search, 3 QAT steps per deployed model; 27 min on 2 cores at load average 12-14: training
633 s, searches 628 + 225 s, where the plan-only SRAM model costs about 30 s per new
architecture, deployment 106 s; one torch thread):
    .venv/bin/python benchmarks/mixed_precision.py --budget 20 --epochs 1 --steps-per-epoch 12 \\
        --qat-supernet-steps 3 --qat-steps 3 --no-firmware \\
        --out benchmarks/results/mixed_precision.json
The demo's own training (--epochs 4 --steps-per-epoch 100 --qat-supernet-steps 20) and
budget give a better supernet at several times the cost.

A result can be rescored when the flash model changes (`rescore`: its flash figures
recomputed from its architectures and bits; its hypervolumes, figures of the run's model,
dropped), in seconds:
    .venv/bin/python benchmarks/mixed_precision.py \
        --rescore benchmarks/results/mixed_precision.json \
        --out benchmarks/results/mixed_precision.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from search_hv import normalized_hypervolumes  # noqa: E402

from qanas.demo.config import DemoConfig  # noqa: E402
from qanas.demo.search import MIXED_OBJECTIVES  # noqa: E402
from qanas.utils.io import atomic_write_json, versions  # noqa: E402

GOAL_FLASH_SAVING = 0.30
GOAL_MIOU_LOSS_PP = 0.5
BITS = ("w8", "w4w8")
VARIANTS = ("searched_bits", "all_searchable_int4")
"""The bits an equal-architecture row compares with all-int8."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = DemoConfig()
    p.add_argument("--target", default=defaults.target)
    p.add_argument("--budget", type=int, default=100, help="subnets per search (default 100)")
    p.add_argument("--epochs", type=int, default=defaults.epochs)
    p.add_argument("--steps-per-epoch", type=int, default=defaults.steps_per_epoch)
    p.add_argument("--qat-supernet-steps", type=int, default=defaults.qat_supernet_steps)
    p.add_argument("--qat-steps", type=int, default=defaults.qat_steps,
                   help="QAT fine-tune steps of the deployed pair (default: the demo's)")
    p.add_argument("--val-images", type=int, default=defaults.val_images)
    p.add_argument("--fidelity-images", type=int, default=defaults.fidelity_images)
    p.add_argument("--optimise", choices=("size", "speed"), default="speed",
                   help="compiler mode of the deployed pair (default speed, the demo's)")
    p.add_argument("--no-firmware", action="store_true", help="skip the QEMU runs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work-dir", default="runs/mixed_precision", help="run folder")
    p.add_argument("--out", help="also write the JSON here (atomically)")
    p.add_argument("--rescore", metavar="JSON",
                   help="recompute the flash figures of this earlier result with today's cost "
                        "model (no training or search; `rescore`), then print / --out it")
    return p


def _train(config: DemoConfig, work: Path):
    """The demo's supernet (float, then QAT-aware steps, QAT stripped) and its checkpoint."""
    from qanas.demo.train import float_supernet_phase, qat_supernet_phase
    from qanas.quant.qat import strip_qat

    torch.manual_seed(config.seed)
    run = float_supernet_phase(config, work, force=True)
    if config.qat_supernet_steps > 0:
        run = qat_supernet_phase(run, config.qat_supernet_steps, work, force=True)
        strip_qat(run.trainer.model)
    return run.trainer, Path(run.result["checkpoint"])


def _row(record, hw_int8) -> dict:
    """A front subnet: its arch string, int8 mIoU, latency, SRAM, flash and 4-bit layers."""
    from qanas.space.bits import arch_of, parse_config, searched_bits

    cfg = parse_config(record.arch)
    bits = searched_bits(cfg) or ()
    return {"arch": record.arch, "miou": record.miou, "latency": record.latency,
            "latency_unit": record.latency_unit, "latency_source": record.latency_source,
            "sram_bytes": record.sram_bytes, "flash_bytes": record.flash_bytes,
            "flash_bytes_int8": hw_int8.profile(arch_of(cfg)).flash_bytes,
            "int4_layers": sum(b == 4 for b in bits), "searchable_layers": len(bits)}


def _equal_architectures(search, scorer) -> list[dict]:
    """Each mixed front subnet against its architecture all-int8 and all-searchable-int4."""
    from qanas.search.bits import BitsEvaluator
    from qanas.space.bits import arch_of, parse_config, searched_bits, with_bits

    space, hw = search.evaluation.space, search.hw
    evaluator = BitsEvaluator(scorer, space)
    rows = []
    for record in search.result.front:
        cfg = parse_config(record.arch)
        if searched_bits(cfg) is None:
            continue
        arch = arch_of(cfg)
        all4 = with_bits(arch, [4] * space.slot_count(arch))
        int8 = {"miou": scorer.score(arch).miou, "flash_bytes": hw.profile(arch).flash_bytes}
        four = {"miou": evaluator.score(all4)["miou"], "flash_bytes": hw.profile(all4).flash_bytes}
        mixed = {"miou": record.miou, "flash_bytes": record.flash_bytes}
        rows.append(_against_int8(
            {"arch": record.arch, "int4_layers": cfg.weight_bits.count(4),
             "searchable_layers": len(cfg.weight_bits), "latency": record.latency,
             "int8": int8, "searched_bits": mixed, "all_searchable_int4": four}))
    return rows


def _against_int8(row: dict) -> dict:
    """`row` with each variant's flash saving, int8-mIoU loss and goal against its int8."""
    int8 = row["int8"]
    for name in VARIANTS:
        variant = row[name]
        variant["flash_saving"] = 1.0 - variant["flash_bytes"] / int8["flash_bytes"]
        variant["miou_loss_pp"] = 100.0 * (int8["miou"] - variant["miou"])
        variant["meets_goal"] = bool(variant["flash_saving"] >= GOAL_FLASH_SAVING
                                     and variant["miou_loss_pp"] <= GOAL_MIOU_LOSS_PP)
    return row


def _goal(equal: list[dict]) -> dict:
    """How many mixed front subnets meet the goal with their searched bits, and the best
    flash saving within the mIoU-loss bound."""
    return {
        "flash_saving_at_least": GOAL_FLASH_SAVING, "miou_loss_pp_at_most": GOAL_MIOU_LOSS_PP,
        "mixed_front_subnets": len(equal),
        "meeting_goal": sum(r["searched_bits"]["meets_goal"] for r in equal),
        "best_saving_within_loss": max(
            (r["searched_bits"]["flash_saving"] for r in equal
             if r["searched_bits"]["miou_loss_pp"] <= GOAL_MIOU_LOSS_PP), default=None)}


def _deploy(arch: str, final, scorer, config: DemoConfig, out: Path, optimise: str,
            firmware: bool) -> dict:
    """QAT fine-tune, QDQ export, compile for the target, host fidelity and QEMU run."""
    from compiler.driver import compile_model
    from qanas.demo.deploy import firmware_runs, host_fidelity, quantize_input
    from qanas.demo.qat import qat_finetune
    from qanas.quant import export_qdq
    from qanas.space.bits import parse_config
    from runtime.runners.base import read_io

    out.mkdir(parents=True, exist_ok=True)
    example = scorer.val_batches[0][0][:1]
    qmodel, qat = qat_finetune(final, scorer, parse_config(arch), config)
    onnx = export_qdq(qmodel, example, out / "model.onnx")
    compiled = compile_model(str(onnx), config.target, out / "project", optimise=optimise,
                             force=True)
    fidelity = host_fidelity({"compiled": compiled, "onnx": onnx, "qmodel": qmodel}, scorer,
                             config.fidelity_images)
    row = {"arch": arch, "qat": {k: v for k, v in qat.items() if k != "losses"},
           **compiled.summary(), "fidelity": fidelity,
           "deployed_vs_fake_quant_pp": 100.0 * abs(fidelity["miou_deployed_int8"]
                                                    - fidelity["miou_fake_quant"])}
    if firmware:
        (inp,), _ = read_io(compiled.out_dir)
        image = quantize_input(example, inp.scale, inp.zero_point)
        row["firmware"] = firmware_runs(compiled.out_dir, (config.target,), image)
    return row


def _pick_deployed(equal: list[dict]) -> dict | None:
    """The mixed front subnet with the largest flash saving within the mIoU goal (else overall)."""
    within = [r for r in equal if r["searched_bits"]["miou_loss_pp"] <= GOAL_MIOU_LOSS_PP]
    pool = within or equal
    return max(pool, key=lambda r: r["searched_bits"]["flash_saving"], default=None)


def rescore(report: dict, command: str) -> dict:
    """`report` (a result of this script) with the flash of every mixed config recomputed
    by today's cost model (`qanas.search.bits.BitsCostModel.flash_saving` from the
    architecture's int8 flash the report holds); no training, search or compile.

    The fronts stay the subnets the searches kept under the flash model of their run. Their
    hypervolumes, taken over every evaluated subnet (which the report does not hold), are
    dropped (None), as figures of that model.

    Raises:
        ValueError: the architecture's int8 flash model no longer gives the report's figures.
    """
    from qanas.cost import HardwareCostModel
    from qanas.cost.hardware import flash_bytes
    from qanas.data import DATASETS
    from qanas.search.bits import BitsCostModel
    from qanas.space import get_space
    from qanas.space.bits import WeightBitsSpace, arch_of, parse_config, with_bits
    from targets import get_target

    setting = report["setting"]
    size = tuple(setting["image_size"])
    classes = len(DATASETS.get(setting["dataset"]).class_names)
    space = WeightBitsSpace(get_space(setting["space"]), size, classes)
    model = BitsCostModel(HardwareCostModel(space.base, get_target(setting["target"]), size,
                                            classes), space)

    def flash(cfg, int8_bytes: int) -> int:
        if flash_bytes(space.layer_specs(arch_of(cfg), size, classes)) != int8_bytes:
            raise ValueError(f"{arch_of(cfg)}: the int8 flash model no longer gives the "
                             f"report's {int8_bytes} B; rerun the study")
        return int8_bytes - model.flash_saving(cfg)

    for front in report["fronts"].values():
        for row in front["front"]:
            row["flash_bytes"] = flash(parse_config(row["arch"]), row["flash_bytes_int8"])
        front["min_flash_bytes"] = min((r["flash_bytes"] for r in front["front"]), default=None)
        front["hv"] = None
    report["hv_ratio_w4w8_over_w8"] = None
    for row in report["equal_architectures"]:
        cfg, int8 = parse_config(row["arch"]), row["int8"]["flash_bytes"]
        all4 = with_bits(arch_of(cfg), [4] * len(cfg.weight_bits))
        row["searched_bits"]["flash_bytes"] = flash(cfg, int8)
        row["all_searchable_int4"]["flash_bytes"] = flash(all4, int8)
        _against_int8(row)
    report["goal"] = _goal(report["equal_architectures"])
    deployed = report.get("deployed")
    if deployed is not None:
        deployed["weights_bytes_saved"] = (deployed["int8"]["weights_bytes"]
                                           - deployed["mixed"]["weights_bytes"])
        deployed["model_flash_saved"] = model.flash_saving(parse_config(deployed["mixed"]["arch"]))
    report["protocol"]["rescore"] = {
        "command": command,
        "flash": "architecture's int8 flash less BitsCostModel.flash_saving: packed weights "
                 "of every 4-bit conv (qanas.space.layer_bits.int4_kernel_layers)",
        "not_recomputed": "hv and hv_ratio (None): taken over every evaluated subnet with the "
                          "run's flash model; the fronts are the subnets the searches kept "
                          "under that model",
        "versions": versions()}
    return report


def main(argv: list[str] | None = None) -> dict:
    """Trains, runs both searches, compares and deploys; prints and returns the report."""
    from qanas.demo.search import search_front
    from qanas.quant import QuantSpec
    from qanas.score import SubnetScorer
    from qanas.space.bits import arch_of, parse_config

    args = _parser().parse_args(argv)
    command = shlex.join([sys.executable, *([sys.argv[0]] if argv is None else []),
                          *(sys.argv[1:] if argv is None else argv)])
    if args.rescore:
        report = rescore(json.loads(Path(args.rescore).read_text()), command)
        if args.out:
            atomic_write_json(args.out, report)
        print(json.dumps(report, indent=1))
        return report
    # One thread: on a shared, loaded machine a second OpenMP thread waits at every barrier.
    torch.set_num_threads(1)
    config = DemoConfig(target=args.target, epochs=args.epochs,
                        steps_per_epoch=args.steps_per_epoch, val_images=args.val_images,
                        qat_supernet_steps=args.qat_supernet_steps, budget=args.budget,
                        qat_steps=args.qat_steps, fidelity_images=args.fidelity_images,
                        seed=args.seed)
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    walls = {}
    start = time.perf_counter()
    final, checkpoint = _train(config, work / "supernet")
    walls["train"] = time.perf_counter() - start
    scorer = SubnetScorer(final.model, final.calib_batches, tuple(final.val_batches), QuantSpec(),
                          image_size=tuple(config.image_size))
    searches = {}
    for bits in BITS:
        start = time.perf_counter()
        searches[bits] = search_front(scorer, dataclasses.replace(config, bits=bits),
                                      work / bits, checkpoint, force=True,
                                      objectives=MIXED_OBJECTIVES)
        walls[f"search_{bits}"] = time.perf_counter() - start
        print(f"search {bits}: {walls[f'search_{bits}']:.0f} s", file=sys.stderr, flush=True)
    everything = np.stack([s.evaluation.objectives(r, MIXED_OBJECTIVES)
                           for s in searches.values() for r in s.result.records])
    hv = normalized_hypervolumes({b: s.result.front_matrix() for b, s in searches.items()},
                                 everything)
    hw_int8 = searches["w8"].hw
    report = {"setting": {**config.to_dict(), "objectives": list(MIXED_OBJECTIVES)},
              "fronts": {}}
    for bits, s in searches.items():
        report["fronts"][bits] = {
            "hv": hv[bits], "evaluated": len(s.result.records), "front_size": len(s.result.front),
            "best_miou": max((r.miou for r in s.result.front), default=None),
            "min_flash_bytes": min((r.flash_bytes for r in s.result.front), default=None),
            "knee": s.knee.arch, "front": [_row(r, hw_int8) for r in s.result.front]}
    report["hv_ratio_w4w8_over_w8"] = hv["w4w8"] / hv["w8"] if hv["w8"] else None
    start = time.perf_counter()
    equal = _equal_architectures(searches["w4w8"], scorer)
    walls["equal_architectures"] = time.perf_counter() - start
    report["equal_architectures"] = equal
    report["goal"] = _goal(equal)
    picked = _pick_deployed(equal)
    if picked is not None:
        start = time.perf_counter()
        mixed = _deploy(picked["arch"], final, scorer, config, work / "deploy_w4w8",
                        args.optimise, not args.no_firmware)
        int8 = _deploy(arch_of(parse_config(picked["arch"])).to_str(), final, scorer, config,
                       work / "deploy_w8", args.optimise, not args.no_firmware)
        walls["deploy"] = time.perf_counter() - start
        report["deployed"] = {
            "optimise": args.optimise, "mixed": mixed, "int8": int8,
            "weights_bytes_saving": 1.0 - mixed["weights_bytes"] / int8["weights_bytes"],
            "weights_bytes_saved": int8["weights_bytes"] - mixed["weights_bytes"],
            "model_flash_saved": searches["w4w8"].hw.flash_saving(parse_config(picked["arch"]))}
    report["protocol"] = {
        "command": command, "seconds": {k: round(v, 1) for k, v in walls.items()},
        "checkpoint": str(checkpoint), "seed": args.seed, "cpus": os.cpu_count(),
        "loadavg": [round(v, 2) for v in os.getloadavg()],
        "torch_threads": torch.get_num_threads(), "hv_indicator": "pymoo.indicators.hv.HV",
        "hv_normalization": "min/max over every subnet both searches evaluated, ref 1.1",
        "latency": "w8: the architecture's int8 figure; w4w8: plus the int4 - int8 "
                   "difference of its 4-bit convs (qanas.cost.int4_latency)",
        "versions": versions()}
    if args.out:
        atomic_write_json(args.out, report)
    print(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
