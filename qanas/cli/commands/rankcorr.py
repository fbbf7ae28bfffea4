"""`qanas rankcorr`: does the supernet rank subnets like standalone training does?

Example:
    qanas rankcorr --supernet runs/fair/supernet.pt --compare runs/spos/supernet.pt \\
        --n 12 --epochs 20 --out runs/rankcorr --json

Steps: a seeded pool of `--pool` random subnets plus the seed network is scored with
the supernet (BN recalibrated, int8 PTQ mIoU: the search's own scorer) and costed
(latency on `--target`); `--n` subnets spread over the Pareto layers of (mIoU,
latency) are picked (`qanas.score.rankcorr.spread_selection`, the seed network
always among them); each is trained standalone from scratch with QAT
(`qanas.train.standalone`, one folder per subnet, so a rerun skips finished ones);
Kendall τ, Spearman ρ and top-k overlap compare the supernet's int8 mIoU with the
standalone int8 mIoU. With `--compare CKPT2 [CKPT3 ...]` the same subnets are scored
with more supernets (another seed, SPOS vs FairNAS) against the same standalone results.
`--select pareto` picks the NXP study's set instead of the spread: the seed network,
(n-1)/2 Pareto-optimal and (n-1)/2 Pareto-worse subnets. Every τ and ρ comes with a
bootstrap 95 % interval, and the trivial rankers (MACs, parameters, predicted latency:
bigger ranks higher) are correlated with the same truth under ``baselines``, so the
report shows whether the supernet adds anything to the costs.

Reruns and parallel workers: the pool scores are cached in DIR/pool.json (keyed by
the scoring protocol), and a finished standalone run is reused only when its
architecture and recipe match. A second `qanas rankcorr` with the same flags and
`--out`, started while the first is training, takes the subnets nobody has claimed
(`qanas.utils.claims`), so two processes share the standalone trainings; the
figures do not depend on the number of workers.

Writes DIR/rankcorr.json, DIR/scatter.png, DIR/config.json, DIR/pool.json,
DIR/selection.json, DIR/standalone/<i>/.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from qanas.cli.command import Command
from qanas.cli.commands.train import add_training_arguments, log_line, standalone_config


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--supernet", required=True, help="checkpoint of `qanas train-supernet`")
    parser.add_argument("--compare", metavar="CKPT", nargs="+",
                        help="more supernets of the same space (another seed, SPOS vs "
                             "FairNAS) scoring the same subnets")
    parser.add_argument("--n", type=int, default=12, help="subnets trained standalone (12)")
    parser.add_argument("--select", choices=("spread", "pareto"), default="spread",
                        help="spread: n subnets evenly over the Pareto layers (default); "
                             "pareto: the seed network, (n-1)/2 Pareto-optimal and (n-1)/2 "
                             "Pareto-worse subnets (the NXP study's choice)")
    parser.add_argument("--bootstrap", type=int, default=2000,
                        help="bootstrap resamples for the 95%% intervals of tau and rho "
                             "(default 2000, seeded by --seed; 0: none)")
    parser.add_argument("--pool", type=int, help="random candidates scored (default 3 x n)")
    parser.add_argument("--target", default="cortex-m4",
                        help="target of the latency axis of the Pareto layers (cortex-m4)")
    parser.add_argument("--top-k", type=int, nargs="+", default=[3, 5],
                        help="top-k overlap sizes (default 3 5)")
    parser.add_argument("--init", choices=("scratch", "supernet"), default="scratch",
                        help="standalone start: scratch (default) or inherited weights")
    parser.add_argument("--no-qat", dest="qat", action="store_false",
                        help="standalone without QAT (int8 = PTQ of the float result)")
    parser.add_argument("--standalone-seeds", type=int, nargs="+", metavar="S",
                        help="train every subnet once per seed and correlate with the mean "
                             "int8 mIoU; also reports how well two seeds agree (the noise "
                             "ceiling of the ranking). Default: --seed only")
    parser.add_argument("--val-fraction", type=float, default=1.0,
                        help="share of the val split for the supernet scores (default 1.0)")
    add_training_arguments(parser)
    parser.add_argument("--out", required=True, help="output directory")


def _scorer(args: argparse.Namespace, checkpoint: str):
    from qanas.search.scorer_setup import ScorerConfig, build_scorer

    image_size = None if args.image_size is None else tuple(args.image_size)
    return build_scorer(ScorerConfig(checkpoint, image_size, args.data_root, args.seed,
                                     args.val_fraction))


def _label(checkpoint: str) -> str:
    from qanas.train.checkpoint import load_checkpoint

    config = load_checkpoint(checkpoint).get("config") or {}
    return f"{config.get('sampler', 'supernet')} ({Path(checkpoint).parent.name})"


def _pool_scores(out: Path, pool: dict, setup, hw, target: str) -> dict[str, dict]:
    """Supernet int8 mIoU and latency of every pool subnet, cached in ``out/pool.json``.

    The cache is keyed by the scoring protocol (checkpoint sha256, data, val share,
    quant spec, seed) and the target, so a rerun or a second worker on the same
    ``--out`` skips the scoring; it is written after every subnet.
    """
    from qanas.search.archive import metric_set_key
    from qanas.utils.io import atomic_write_json

    key = {"metric_set": metric_set_key(**setup.metric_settings), "target": target}
    path = out / "pool.json"
    cached = json.loads(path.read_text()) if path.is_file() else {}
    scores = cached.get("scores", {}) if cached.get("key") == key else {}
    for i, (arch, cfg) in enumerate(pool.items()):
        if arch not in scores:
            s = setup.evaluator.score(cfg)
            scores[arch] = {"miou": s["miou"], "miou_fp32": s["miou_fp32"],
                            "latency": hw.profile(cfg).latency.value}
            atomic_write_json(path, {"key": key, "scores": scores})
        log_line(f"pool {i + 1}/{len(pool)}: int8 mIoU {scores[arch]['miou']:.4f}  {arch}")
    return scores


def _finished(folder: Path, arch: str, config: dict) -> dict | None:
    """The stored result of `folder` when it trained `arch` with exactly `config`."""
    done = folder / "result.json"
    if not done.is_file():
        return None
    result = json.loads(done.read_text())
    if result.get("arch") != arch or result.get("standalone_config") != config:
        return None
    return result


def standalone_seeds(args: argparse.Namespace) -> list[int]:
    """The standalone seeds: `--standalone-seeds` (duplicates dropped), else `--seed`."""
    return list(dict.fromkeys(args.standalone_seeds or [args.seed]))


def _folder(out: Path, i: int, seed: int, args: argparse.Namespace) -> Path:
    """``standalone/<i>`` for `--seed`, ``standalone/<i>-seed<S>`` for another seed."""
    return out / "standalone" / (f"{i:02d}" if seed == args.seed else f"{i:02d}-seed{seed}")


def _standalone_results(args: argparse.Namespace, chosen: list[str], out: Path,
                        poll_s: float = 10.0) -> dict[tuple[str, int], dict]:
    """Standalone (QAT) results of every chosen subnet and seed, shared between workers.

    Returns {(arch, seed): result}. Subnet i with seed S trains in
    ``out/standalone/<i>/`` (S = `--seed`) or ``<i>-seed<S>/``; a finished folder with
    the same architecture and recipe is reused. Several `qanas rankcorr` processes on the
    same ``--out`` split the work through `qanas.utils.claims`: a process trains the
    subnets nobody has claimed, then waits for (or takes over, if their process
    died) the ones claimed by others.
    """
    import time
    from dataclasses import replace

    from qanas.train.standalone import train_standalone
    from qanas.utils.claims import is_claimed_by_live_process, release, try_claim
    from qanas.utils.io import atomic_write_json

    results: dict[tuple[str, int], dict] = {}
    pending = [(i, arch, seed) for seed in standalone_seeds(args)
               for i, arch in enumerate(chosen)]
    while pending:
        waiting = []
        for i, arch, seed in pending:
            folder = _folder(out, i, seed, args)
            cfg = replace(standalone_config(args, arch, args.init, args.supernet, args.qat),
                          seed=seed)
            result = _finished(folder, arch, cfg.to_dict())
            if result is None and try_claim(folder):
                try:
                    result = _finished(folder, arch, cfg.to_dict())
                    if result is None:
                        result = {**train_standalone(cfg, folder, progress=log_line),
                                  "standalone_config": cfg.to_dict()}
                        atomic_write_json(folder / "result.json", result)
                finally:
                    release(folder)
            if result is None:
                waiting.append((i, arch, seed))
                continue
            results[(arch, seed)] = result
            log_line(f"standalone {i + 1}/{len(chosen)} seed {seed}: int8 mIoU "
                     f"{result['miou']}  {arch}")
        if waiting and waiting == pending:
            held = [_folder(out, i, seed, args).name for i, _, seed in waiting
                    if is_claimed_by_live_process(_folder(out, i, seed, args))]
            log_line(f"waiting for standalone runs {held} trained by another process")
            time.sleep(poll_s)
        pending = waiting
    return results


def _mean(values: list[float]) -> float | None:
    """Mean of the non-NaN values (None when there are none)."""
    kept = [v for v in values if v == v]
    return sum(kept) / len(kept) if kept else None


def _seed_agreement(rows: list[dict], seeds: list[int], ks) -> dict | None:
    """Rank correlation of standalone int8 mIoU between every pair of seeds.

    The noise ceiling of the study: a proxy cannot be expected to rank the subnets
    better than a second standalone training with another seed does.
    """
    from itertools import combinations

    from qanas.score.rankcorr import rank_correlation

    if len(seeds) < 2:
        return None
    nan = float("nan")
    per_seed = [[nan if r["standalone_miou_per_seed"][j] is None
                 else float(r["standalone_miou_per_seed"][j]) for r in rows]
                for j in range(len(seeds))]
    return {f"{seeds[a]}-{seeds[b]}": rank_correlation(per_seed[a], per_seed[b], ks).to_dict()
            for a, b in combinations(range(len(seeds)), 2)}


def _run(args: argparse.Namespace) -> dict:
    import numpy as np

    from qanas.cost.hardware import HardwareCostModel
    from qanas.errors import ConfigError
    from qanas.score.rankcorr import (
        pareto_split_selection,
        plot_rank_scatter,
        rank_correlation,
        spread_selection,
    )
    from qanas.space.base import SubnetConfig
    from qanas.space.bits import parse_config
    from qanas.space.geometry import check_image_size
    from qanas.utils.io import atomic_write_json, check_output_dir, write_run_metadata
    from targets import get_target

    if args.n < 2:
        raise ConfigError(f"--n must be at least 2 subnets to correlate, got {args.n}")
    out = check_output_dir(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_run_metadata(out, {k: v for k, v in vars(args).items() if k != "json"}, args.seed)
    setup = _scorer(args, args.supernet)
    space = setup.space
    check_image_size(space, setup.image_size,
                     "--image-size" if args.image_size else "the checkpoint's image size")
    hw = HardwareCostModel(space, get_target(args.target), setup.image_size, setup.num_classes)
    rng = np.random.default_rng(args.seed)
    pool: dict[str, SubnetConfig] = {space.seed_config().to_str(): space.seed_config()}
    want = 1 + (args.pool or 3 * args.n)
    for _ in range(50 * want):
        if len(pool) >= min(want, space.cardinality):
            break
        cfg = space.sample(rng)
        pool.setdefault(cfg.to_str(), cfg)
    scores = _pool_scores(out, pool, setup, hw, args.target)
    archs = list(pool)
    nan = float("nan")
    pool_miou = [scores[a]["miou"] if scores[a]["miou"] is not None else nan for a in archs]
    pool_latency = [scores[a]["latency"] for a in archs]
    seed_arch = [space.seed_config().to_str()]
    if args.select == "pareto":
        half = (args.n - 1) // 2
        chosen = pareto_split_selection(archs, pool_miou, pool_latency, args.n - 1 - half, half,
                                        always=seed_arch)
    else:
        chosen = spread_selection(archs, pool_miou, pool_latency, args.n, always=seed_arch)
    atomic_write_json(out / "selection.json", {"chosen": chosen})
    results = _standalone_results(args, chosen, out)
    seeds = standalone_seeds(args)

    def as_float(values):
        return [nan if v is None else float(v) for v in values]

    rows = []
    for arch in chosen:
        runs = [results[(arch, s)] for s in seeds]
        int8, fp32 = as_float(r["miou"] for r in runs), as_float(r["miou_fp32"] for r in runs)
        costs = space.costs(parse_config(arch), setup.image_size, setup.num_classes)
        rows.append({"arch": arch, "supernet_miou": scores[arch]["miou"],
                     "macs": int(costs["macs"]), "params": int(costs["params"]),
                     "standalone_miou": _mean(int8), "standalone_miou_fp32": _mean(fp32),
                     "standalone_miou_per_seed": [r["miou"] for r in runs],
                     "latency": scores[arch]["latency"],
                     "standalone_seconds": sum(r.get("seconds") or 0.0 for r in runs),
                     "seed_network": arch == space.seed_config().to_str()})

    truth = as_float(r["standalone_miou"] for r in rows)

    def correlate(values):
        return rank_correlation(values, truth, args.top_k, args.bootstrap, args.seed).to_dict()

    label = _label(args.supernet)
    proxies = {label: as_float(r["supernet_miou"] for r in rows)}
    correlations = {label: correlate(proxies[label])}
    for j, checkpoint in enumerate(args.compare or []):
        other = _scorer(args, checkpoint)
        if other.space.name != space.name:
            raise ConfigError(f"--compare {checkpoint} is a {other.space.name!r} supernet, "
                              f"--supernet is {space.name!r}; compare supernets of one space")
        label2 = _label(checkpoint)
        if label2 in proxies:
            label2 += f" [compare {j + 1}]"
        values = [other.evaluator.score(parse_config(r["arch"]))["miou"] for r in rows]
        for r, v in zip(rows, values, strict=True):
            r.setdefault("compare_miou", v)  # the first --compare's (what the report draws)
            r.setdefault("compare_mious", {})[label2] = v
        proxies[label2] = as_float(values)
        correlations[label2] = correlate(proxies[label2])
    # Trivial rankers: a bigger (slower) subnet ranks higher. A supernet that does not
    # beat these adds nothing to a search that already knows the costs.
    baselines = {name: correlate([float(r[key]) for r in rows]) for name, key in
                 (("macs", "macs"), ("params", "params"),
                  (f"latency ({args.target})", "latency"))}
    first = correlations[label]
    plot = plot_rank_scatter(out / "scatter.png", truth, proxies,
                             title=f"{space.name}: n={len(rows)}\n" + ", ".join(
                                 f"{k}: tau={v['kendall_tau']:.2f}" for k, v in
                                 correlations.items() if v["kendall_tau"] is not None))
    summary = {"space": space.name, "n": len(rows), "pool": len(pool),
               "kendall_tau": first["kendall_tau"], "spearman_rho": first["spearman_rho"],
               "top_k": first["top_k"], "correlations": correlations,
               "baselines": baselines, "selection": args.select,
               "bootstrap_resamples": args.bootstrap, "subnets": rows,
               "standalone": {"epochs": args.epochs, "qat": args.qat, "init": args.init,
                              "seeds": seeds,
                              "recipe": {k: v for k, v in results[(chosen[0], seeds[0])].get(
                                  "standalone_config", {}).items()
                                  if k not in ("arch", "seed")}},
               "seed_agreement": _seed_agreement(rows, seeds, args.top_k),
               "files": {"json": str(out / "rankcorr.json"), "scatter": str(plot)}}
    atomic_write_json(out / "rankcorr.json", summary)
    return summary


COMMAND = Command("rankcorr", "rank correlation of supernet vs standalone (QAT) int8 mIoU "
                  "over subnets spread across the front", _add_arguments, _run)
