"""The whole qanas pipeline on the embedded default, as one reproducible run.

`run_demo` chains the packages that exist today:

1. generate the synthetic segmentation dataset (on the fly, seeded);
2. train a FairNAS supernet for a few epochs (`qanas.train`);
3. score candidate subnets (seed, min, max and seeded random samples) on
   Brevitas int8 quantized mIoU (`qanas.score`);
4. pick the best-scoring candidate whose compiled arena and weights fit the
   target's SRAM and flash (the compiler's own memory plan decides);
5. export it to ONNX QDQ, compile it with TVM to integer-only C (`compiler`);
6. check fidelity on the host: the compiled C against onnxruntime on the same
   QDQ model (bit-exactness) and deployed-integer mIoU against fake-quant mIoU;
7. build firmware for each QEMU Cortex-M target, run it, and compare its int8
   outputs with the host build bit for bit (`runtime`).

Every figure in `results.json` is measured in this run.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qanas.utils import atomic_write_json, prepare_output_dir, progress, write_run_metadata

QEMU_TARGETS = ("cortex-m4", "cortex-m7", "cortex-m55")


@dataclass(frozen=True)
class DemoConfig:
    """Knobs of `qanas demo`; the defaults finish in minutes on 2 CPU cores."""

    space: str = "squeezenas-small"
    target: str = "cortex-m7"
    dataset: str = "synthetic"
    data_root: str | None = None
    image_size: tuple[int, int] = (64, 128)
    epochs: int = 4
    steps_per_epoch: int = 100
    batch_size: int = 4
    candidates: int = 4
    fidelity_images: int = 8
    firmware_targets: tuple[str, ...] = QEMU_TARGETS
    seed: int = 0
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-friendly form, recorded in the run's config.json."""
        return asdict(self)


def _stage(name: str, log: list[dict], start: float, **info) -> None:
    entry = {"stage": name, "seconds": round(time.perf_counter() - start, 2), **info}
    log.append(entry)
    print(f"[qanas demo] {name}: {entry['seconds']} s", file=sys.stderr, flush=True)


def _quantize_input(image: torch.Tensor, scale: float, zero_point: int) -> np.ndarray:
    q = np.round(image.numpy() / scale) + zero_point
    return np.clip(q, -128, 127).astype(np.int8)


def train_supernet(config: DemoConfig, out: Path) -> tuple[Any, dict]:
    """Trains the demo supernet; returns the trainer and its summary."""
    from qanas.train.config import TrainConfig
    from qanas.train.trainer import SupernetTrainer

    train_config = TrainConfig(
        space=config.space, dataset=config.dataset, data_root=config.data_root,
        image_size=tuple(config.image_size), epochs=config.epochs,
        batch_size=config.batch_size, steps_per_epoch=config.steps_per_epoch,
        seed=config.seed,
    )
    trainer = SupernetTrainer(train_config, out / "supernet")
    return trainer, trainer.fit()


def candidate_configs(space, count: int, seed: int) -> list:
    """seed, min and max configs plus `count` seeded random samples, without repeats."""
    rng = np.random.default_rng(seed)
    configs = [space.seed_config(), space.min_config(), space.max_config()]
    configs += [space.sample(rng) for _ in range(count)]
    unique, seen = [], set()
    for cfg in configs:
        if cfg.choices not in seen:
            seen.add(cfg.choices)
            unique.append(cfg)
    return unique


def score_candidates(trainer, configs) -> tuple[Any, list]:
    """Scores each config on quantized (int8) and float mIoU with one shared scorer."""
    from qanas.quant import QuantSpec
    from qanas.score import SubnetScorer

    scorer = SubnetScorer(trainer.model, trainer._calib, tuple(trainer._val), QuantSpec(),
                          image_size=tuple(trainer.config.image_size))
    scores = [scorer.score(cfg) for cfg in progress(configs, desc="scoring int8 subnets")]
    return scorer, scores


def compile_first_fitting(scorer, scores, config: DemoConfig, out: Path) -> dict:
    """Exports and compiles candidates best-first until one fits the target's memory."""
    from compiler.driver import compile_model
    from compiler.errors import MemoryBudgetExceeded
    from qanas.quant import export_qdq
    from qanas.space import SubnetConfig

    rejected = []
    example = scorer.val_batches[0][0][:1]
    for rank, score in enumerate(sorted(scores, key=lambda s: -s.miou)):
        cfg = SubnetConfig.from_str(score.arch)
        qmodel = scorer.quantize(scorer.prepare(cfg))
        onnx_path = export_qdq(qmodel, example, out / f"candidate{rank}.onnx")
        try:
            result = compile_model(str(onnx_path), config.target, out / f"project{rank}",
                                   force=True)
        except MemoryBudgetExceeded as exc:
            rejected.append({"arch": score.arch, "reason": str(exc)})
            continue
        return {"score": score, "qmodel": qmodel, "onnx": onnx_path, "compiled": result,
                "rejected": rejected}
    raise MemoryBudgetExceeded(
        f"none of the {len(scores)} scored subnets fits {config.target}; "
        f"reasons: {[r['reason'] for r in rejected]}; try a smaller --image-size or a target "
        "with more SRAM"
    )


def host_fidelity(chosen: dict, scorer, images: int) -> dict:
    """Compiled C vs onnxruntime (bit-exactness) and deployed vs fake-quant mIoU on val images."""
    from compiler.reference import boundary, run_int8_reference
    from qanas.data import ConfusionMatrix
    from qanas.quant import run_onnx
    from runtime.runners import get_runner
    from runtime.runners.base import read_io

    project = chosen["compiled"].out_dir
    (inp,), (outp,) = read_io(project)
    runner = get_runner("host")
    num_classes = scorer.supernet.num_classes
    deployed = ConfusionMatrix(num_classes, scorer.ignore_index)
    fake = ConfusionMatrix(num_classes, scorer.ignore_index)
    exact = total = reference_exact = 0
    max_lsb = 0
    reference_input = boundary(chosen["onnx"]).inputs[0].name
    seconds = []
    done = 0
    for image_batch, mask_batch in scorer.val_batches:
        for image, mask in zip(image_batch, mask_batch, strict=True):
            if done >= images:
                break
            xq = _quantize_input(image[None], inp.scale, inp.zero_point)
            result = runner.run(project, {inp.name: xq})
            ours = result.outputs[outp.name].astype(np.int32).reshape(outp.shape)
            seconds += result.latency_s
            x_float = (xq.astype(np.float32) - inp.zero_point) * inp.scale
            ref = np.asarray(run_onnx(chosen["onnx"], x_float))
            ref_q = np.clip(np.round(ref / outp.scale) + outp.zero_point, -128, 127)
            diff = np.abs(ours - ref_q.astype(np.int32))
            integer = run_int8_reference(chosen["onnx"], {reference_input: xq})
            reference_exact += int((next(iter(integer.values())).reshape(outp.shape)
                                    == ours).sum())
            exact += int((diff == 0).sum())
            total += diff.size
            max_lsb = max(max_lsb, int(diff.max()))
            deployed.update(torch.from_numpy(ours).argmax(1), mask[None])
            with torch.no_grad():
                fq = chosen["qmodel"](torch.from_numpy(x_float))
            fake.update(fq.argmax(1), mask[None])
            done += 1
    return {
        "images": done,
        "bit_exact_fraction": exact / max(total, 1),
        "max_lsb_diff": max_lsb,
        "reference": "onnxruntime on the same QDQ model (optimizations off)",
        "bit_exact_fraction_integer_reference": reference_exact / max(total, 1),
        "integer_reference": "compiler.reference NumPy int8 interpreter of the QDQ model",
        "miou_deployed_int8": deployed.miou(),
        "miou_fake_quant": fake.miou(),
        "host_latency_s_median": float(np.median(seconds)) if seconds else None,
    }


def firmware_runs(project: Path, targets: tuple[str, ...], image: np.ndarray) -> list[dict]:
    """Builds and runs the firmware in QEMU per target; compares outputs with the host build."""
    from runtime.firmware import FirmwareDoesNotFit
    from runtime.runners import get_runner
    from runtime.runners.base import read_io
    from runtime.runners.firmware_base import HostReferenceRunner

    (inp,), _ = read_io(project)
    inputs = {inp.name: image}
    reference = HostReferenceRunner().run(project, inputs)
    rows = []
    for name in progress(targets, desc="firmware under QEMU"):
        runner = get_runner("qemu", target=name)
        try:
            result = runner.run(project, inputs)
            again = runner.run(project, inputs)  # a second emulator run of the same image
        except FirmwareDoesNotFit as exc:
            rows.append({"target": name, "fits": False, "reason": str(exc)})
            continue
        proto = result.protocol
        match = all(np.array_equal(result.outputs[k], reference.outputs[k])
                    for k in reference.outputs)
        rows.append({
            "target": name,
            "fits": True,
            "latency": proto.get("latency"),
            "unit": proto.get("unit"),
            "repeatable": proto.get("latency") == again.protocol.get("latency"),
            "flash_bytes": proto.get("flash_bytes"),
            "sram_bytes": proto.get("sram_bytes"),
            "outputs_match_host": bool(match),
        })
    return rows


def run_demo(config: DemoConfig, out_dir: str | Path, force: bool = False) -> dict:
    """Runs the pipeline described in the module docstring; returns the results dict."""
    from qanas.space import get_space

    out = prepare_output_dir(out_dir, force)
    write_run_metadata(out, config.to_dict(), config.seed)
    torch.manual_seed(config.seed)
    stages: list[dict] = []
    start = time.perf_counter()

    t = time.perf_counter()
    trainer, summary = train_supernet(config, out)
    _stage("train FairNAS supernet", stages, t, epochs=summary["epochs"])

    t = time.perf_counter()
    space = get_space(config.space)
    scorer, scores = score_candidates(trainer, candidate_configs(space, config.candidates,
                                                                 config.seed))
    _stage("score int8 subnets", stages, t, subnets=len(scores))

    t = time.perf_counter()
    chosen = compile_first_fitting(scorer, scores, config, out)
    compiled = chosen["compiled"]
    _stage("export QDQ + compile", stages, t, target=config.target)

    t = time.perf_counter()
    fidelity = host_fidelity(chosen, scorer, config.fidelity_images)
    _stage("host fidelity", stages, t)

    t = time.perf_counter()
    from runtime.runners.base import read_io

    (inp,), _ = read_io(compiled.out_dir)
    first_image = scorer.val_batches[0][0][:1]
    firmware = firmware_runs(compiled.out_dir, tuple(config.firmware_targets),
                             _quantize_input(first_image, inp.scale, inp.zero_point))
    _stage("firmware in QEMU", stages, t, targets=list(config.firmware_targets))

    results = {
        "run_dir": str(out),
        "space": config.space,
        "target": config.target,
        "training": {k: summary[k] for k in ("epochs", "final_loss", "val_miou",
                                             "baseline_miou")},
        "candidates": [s.to_dict() for s in scores],
        "chosen": {
            "arch": chosen["score"].arch,
            "miou_int8": chosen["score"].miou,
            "miou_fp32": chosen["score"].miou_fp32,
            "macs": chosen["score"].macs,
            "onnx": str(chosen["onnx"]),
            "project": str(compiled.out_dir),
            **compiled.summary(),
            "rejected": chosen["rejected"],
        },
        "fidelity": fidelity,
        "firmware": firmware,
        "stages": stages,
        "seconds": round(time.perf_counter() - start, 1),
    }
    atomic_write_json(out / "results.json", results)
    return results


def format_table(results: dict) -> str:
    """A short human-readable summary of `results`."""
    c, f = results["chosen"], results["fidelity"]
    lines = [
        f"run directory     {results['run_dir']}",
        f"supernet          {results['space']}, {results['training']['epochs']} epochs, "
        f"majority-class baseline mIoU {results['training']['baseline_miou']:.3f}",
        f"chosen subnet     {c['arch']}",
        f"  int8 mIoU       {c['miou_int8']:.3f} (float {c['miou_fp32']:.3f}), "
        f"{c['macs'] / 1e6:.1f} MMACs",
        f"  arena / LB      {c['arena_bytes']} / {c['lower_bound_bytes']} bytes, "
        f"weights {c['weights_bytes']} bytes, {c['kernels']} kernels",
        f"host C vs ORT     {100 * f['bit_exact_fraction']:.3f}% bit-exact, max "
        f"{f['max_lsb_diff']} LSB; vs NumPy int8 reference "
        f"{100 * f['bit_exact_fraction_integer_reference']:.3f}%",
        f"fidelity          deployed mIoU {f['miou_deployed_int8']:.3f} vs fake-quant "
        f"{f['miou_fake_quant']:.3f} on {f['images']} images",
    ]
    for row in results["firmware"]:
        if not row["fits"]:
            lines.append(f"{row['target']:<17} does not fit: {row['reason']}")
            continue
        lat = row["latency"] or [0]
        lines.append(f"{row['target']:<17} {int(lat[0]):>12,} {row['unit']}, flash "
                     f"{row['flash_bytes']} B, outputs match host: {row['outputs_match_host']}")
    lines.append(f"total             {results['seconds']} s")
    return "\n".join(lines)
