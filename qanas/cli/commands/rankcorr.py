"""`qanas rankcorr`: does the supernet rank subnets like standalone training does?

Example:
    qanas rankcorr --supernet runs/fair/supernet.pt --compare runs/spos/supernet.pt \\
        --n 12 --epochs 20 --out runs/rankcorr --json

Steps: a seeded pool of `--pool` random subnets plus the seed network is scored with
the supernet (BN recalibrated, int8 PTQ mIoU: the search's own scorer) and costed
(latency on `--target`); `--n` subnets spread over the Pareto layers of (mIoU,
latency) are picked (`qanas.search.rankcorr.spread_selection`, the seed network
always among them); each is trained standalone from scratch with QAT
(`qanas.train.standalone`, one folder per subnet, so a rerun skips finished ones);
Kendall τ, Spearman ρ and top-k overlap compare the supernet's int8 mIoU with the
standalone int8 mIoU. With `--compare CKPT2` the same subnets are scored with the
second supernet (e.g. SPOS vs FairNAS) against the same standalone results.

Writes DIR/rankcorr.json, DIR/scatter.png, DIR/config.json, DIR/standalone/<i>/.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from qanas.cli.command import Command
from qanas.cli.commands.train import add_training_arguments, log_line, standalone_config


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--supernet", required=True, help="checkpoint of `qanas train-supernet`")
    parser.add_argument("--compare", metavar="CKPT",
                        help="a second supernet of the same space (e.g. SPOS vs FairNAS)")
    parser.add_argument("--n", type=int, default=12, help="subnets trained standalone (12)")
    parser.add_argument("--pool", type=int, help="random candidates scored (default 3 x n)")
    parser.add_argument("--target", default="cortex-m4",
                        help="target of the latency axis of the Pareto layers (cortex-m4)")
    parser.add_argument("--top-k", type=int, nargs="+", default=[3, 5],
                        help="top-k overlap sizes (default 3 5)")
    parser.add_argument("--init", choices=("scratch", "supernet"), default="scratch",
                        help="standalone start: scratch (default) or inherited weights")
    parser.add_argument("--no-qat", dest="qat", action="store_false",
                        help="standalone without QAT (int8 = PTQ of the float result)")
    parser.add_argument("--val-fraction", type=float, default=1.0,
                        help="share of the val split for the supernet scores (default 1.0)")
    add_training_arguments(parser)
    parser.add_argument("--out", required=True, help="output directory")


def _scorer(args: argparse.Namespace, checkpoint: str):
    from qanas.cli.commands.search import build_scorer

    ns = argparse.Namespace(supernet=checkpoint, image_size=args.image_size,
                            data_root=args.data_root, seed=args.seed,
                            val_fraction=args.val_fraction)
    return build_scorer(ns)


def _label(checkpoint: str) -> str:
    from qanas.train.checkpoint import load_checkpoint

    config = load_checkpoint(checkpoint).get("config") or {}
    return f"{config.get('sampler', 'supernet')} ({Path(checkpoint).parent.name})"


def _run(args: argparse.Namespace) -> dict:
    import numpy as np

    from qanas.errors import ConfigError
    from qanas.search.hw import HardwareCostModel
    from qanas.search.rankcorr import plot_rank_scatter, rank_correlation, spread_selection
    from qanas.space.base import SubnetConfig
    from qanas.train.standalone import train_standalone
    from qanas.utils.io import atomic_write_json, write_run_metadata
    from targets import get_target

    if args.n < 2:
        raise ConfigError(f"--n must be at least 2 subnets to correlate, got {args.n}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_run_metadata(out, {k: v for k, v in vars(args).items() if k != "json"}, args.seed)
    setup = _scorer(args, args.supernet)
    space = setup.space
    hw = HardwareCostModel(space, get_target(args.target), setup.image_size, setup.num_classes)
    rng = np.random.default_rng(args.seed)
    pool: dict[str, SubnetConfig] = {space.seed_config().to_str(): space.seed_config()}
    want = 1 + (args.pool or 3 * args.n)
    for _ in range(50 * want):
        if len(pool) >= min(want, space.cardinality):
            break
        cfg = space.sample(rng)
        pool.setdefault(cfg.to_str(), cfg)
    scores: dict[str, dict] = {}
    for i, (arch, cfg) in enumerate(pool.items()):
        s = setup.evaluator.score(cfg)
        scores[arch] = {"miou": s["miou"], "miou_fp32": s["miou_fp32"],
                        "latency": hw.profile(cfg).latency.value}
        log_line(f"pool {i + 1}/{len(pool)}: int8 mIoU {s['miou']:.4f}  {arch}")
    archs = list(pool)
    nan = float("nan")
    chosen = spread_selection(
        archs, [scores[a]["miou"] if scores[a]["miou"] is not None else nan for a in archs],
        [scores[a]["latency"] for a in archs], args.n, always=[space.seed_config().to_str()])
    rows = []
    for i, arch in enumerate(chosen):
        folder = out / "standalone" / f"{i:02d}"
        done = folder / "result.json"
        if done.is_file() and json.loads(done.read_text()).get("arch") == arch:
            result = json.loads(done.read_text())
        else:
            cfg = standalone_config(args, arch, args.init, args.supernet, args.qat)
            result = train_standalone(cfg, folder, progress=log_line)
            atomic_write_json(done, result)
        rows.append({"arch": arch, "supernet_miou": scores[arch]["miou"],
                     "standalone_miou": result["miou"],
                     "standalone_miou_fp32": result["miou_fp32"],
                     "latency": scores[arch]["latency"],
                     "seed_network": arch == space.seed_config().to_str()})
        log_line(f"standalone {i + 1}/{len(chosen)}: int8 mIoU {result['miou']}  {arch}")

    def as_float(values):
        return [nan if v is None else float(v) for v in values]

    truth = as_float(r["standalone_miou"] for r in rows)
    label = _label(args.supernet)
    proxies = {label: as_float(r["supernet_miou"] for r in rows)}
    correlations = {label: rank_correlation(proxies[label], truth, args.top_k).to_dict()}
    if args.compare:
        other = _scorer(args, args.compare)
        if other.space.name != space.name:
            raise ConfigError(f"--compare {args.compare} is a {other.space.name!r} supernet, "
                              f"--supernet is {space.name!r}; compare supernets of one space")
        label2 = _label(args.compare)
        if label2 == label:
            label2 += " [compare]"
        values = [other.evaluator.score(SubnetConfig.from_str(r["arch"]))["miou"] for r in rows]
        for r, v in zip(rows, values, strict=True):
            r["compare_miou"] = v
        proxies[label2] = as_float(values)
        correlations[label2] = rank_correlation(proxies[label2], truth, args.top_k).to_dict()
    first = correlations[label]
    plot = plot_rank_scatter(out / "scatter.png", truth, proxies,
                             title=f"{space.name}: n={len(rows)}, " + ", ".join(
                                 f"{k}: tau={v['kendall_tau']:.2f}" for k, v in
                                 correlations.items() if v["kendall_tau"] is not None))
    summary = {"space": space.name, "n": len(rows), "pool": len(pool),
               "kendall_tau": first["kendall_tau"], "spearman_rho": first["spearman_rho"],
               "top_k": first["top_k"], "correlations": correlations, "subnets": rows,
               "standalone": {"epochs": args.epochs, "qat": args.qat, "init": args.init},
               "files": {"json": str(out / "rankcorr.json"), "scatter": str(plot)}}
    atomic_write_json(out / "rankcorr.json", summary)
    return summary


COMMAND = Command("rankcorr", "rank correlation of supernet vs standalone (QAT) int8 mIoU "
                  "over subnets spread across the front", _add_arguments, _run)
