"""`run_rankcorr(RankCorrConfig)`: does the supernet rank subnets like standalone training does?

Steps: a seeded pool of `pool` random subnets plus the seed network is scored with
the supernet (BN recalibrated, int8 PTQ mIoU: the search's own scorer) and costed
(latency on `target`; `qanas.rankcorr.pool`); `n` subnets spread over the Pareto layers
of (mIoU, latency) are picked (`qanas.score.rankcorr.spread_selection`, the seed network
always among them; ``select="pareto"``: the NXP study's set); each is trained standalone
from scratch with QAT, one folder per subnet and seed, shared between workers
(`qanas.rankcorr.standalone`); Kendall τ, Spearman ρ and top-k overlap compare the
supernet's int8 mIoU with the standalone int8 mIoU (`qanas.score.rankcorr`). The
`compare` supernets score the same subnets against the same standalone results. Every
τ and ρ comes with a bootstrap 95 % interval, and the trivial rankers (MACs, parameters,
predicted latency: bigger ranks higher) are correlated with the same truth under
``baselines``, so the report shows whether the supernet adds anything to the costs.

Writes ``rankcorr.json``, ``scatter.png``, ``config.json``, ``pool.json``,
``selection.json`` and ``standalone/<i>/`` in `config.out`.

Example:
    >>> from qanas.rankcorr import RankCorrConfig, run_rankcorr
    >>> summary = run_rankcorr(RankCorrConfig(supernet="runs/fair/supernet.pt", n=12,
    ...                                       epochs=20, out="runs/rankcorr"))  # doctest: +SKIP
    >>> summary["kendall_tau"], summary["baselines"]["macs"]["kendall_tau"]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import combinations
from pathlib import Path

from qanas.errors import ConfigError
from qanas.rankcorr.config import RankCorrConfig
from qanas.rankcorr.pool import pool_scores, sample_pool
from qanas.rankcorr.standalone import standalone_results
from qanas.score.rankcorr import (
    pareto_split_selection,
    plot_rank_scatter,
    rank_correlation,
    spread_selection,
)
from qanas.search.scorer_setup import ScorerConfig, build_scorer

NAN = float("nan")


def _scorer(config: RankCorrConfig, checkpoint: str):
    return build_scorer(ScorerConfig(checkpoint, config.image_size, config.data_root,
                                     config.seed, config.val_fraction))


def _label(checkpoint: str) -> str:
    """``<sampler> (<run folder>)``: how a supernet is named in the correlations."""
    from qanas.train.checkpoint import load_checkpoint

    meta = load_checkpoint(checkpoint).get("config") or {}
    return f"{meta.get('sampler', 'supernet')} ({Path(checkpoint).parent.name})"


def _as_float(values) -> list[float]:
    return [NAN if v is None else float(v) for v in values]


def _mean(values: list[float]) -> float | None:
    """Mean of the non-NaN values (None when there are none)."""
    kept = [v for v in values if v == v]
    return sum(kept) / len(kept) if kept else None


def seed_agreement(rows: list[dict], seeds: list[int], ks) -> dict | None:
    """Rank correlation of standalone int8 mIoU between every pair of seeds.

    The noise ceiling of the study: a proxy cannot be expected to rank the subnets
    better than a second standalone training with another seed does.
    """
    if len(seeds) < 2:
        return None
    per_seed = [_as_float(r["standalone_miou_per_seed"][j] for r in rows)
                for j in range(len(seeds))]
    return {f"{seeds[a]}-{seeds[b]}": rank_correlation(per_seed[a], per_seed[b], ks).to_dict()
            for a, b in combinations(range(len(seeds)), 2)}


def _choose(config: RankCorrConfig, archs: list[str], scores: dict, seed_arch: str) -> list[str]:
    """The `n` subnets trained standalone, by `config.select`."""
    miou = [NAN if scores[a]["miou"] is None else scores[a]["miou"] for a in archs]
    latency = [scores[a]["latency"] for a in archs]
    if config.select == "pareto":
        half = (config.n - 1) // 2
        return pareto_split_selection(archs, miou, latency, config.n - 1 - half, half,
                                      always=[seed_arch])
    return spread_selection(archs, miou, latency, config.n, always=[seed_arch])


def _rows(chosen: list[str], scores: dict, results: dict, seeds: list[int], setup,
          seed_arch: str) -> list[dict]:
    """One row per chosen subnet: supernet and standalone mIoU, costs, latency."""
    from qanas.space.bits import parse_config

    rows = []
    for arch in chosen:
        runs = [results[(arch, s)] for s in seeds]
        int8, fp32 = _as_float(r["miou"] for r in runs), _as_float(r["miou_fp32"] for r in runs)
        costs = setup.space.costs(parse_config(arch), setup.image_size, setup.num_classes)
        rows.append({"arch": arch, "supernet_miou": scores[arch]["miou"],
                     "macs": int(costs["macs"]), "params": int(costs["params"]),
                     "standalone_miou": _mean(int8), "standalone_miou_fp32": _mean(fp32),
                     "standalone_miou_per_seed": [r["miou"] for r in runs],
                     "latency": scores[arch]["latency"],
                     "standalone_seconds": sum(r.get("seconds") or 0.0 for r in runs),
                     "seed_network": arch == seed_arch})
    return rows


def _compare(config: RankCorrConfig, rows: list[dict], space, proxies: dict) -> None:
    """Scores the rows with every `config.compare` supernet, into `rows` and `proxies`."""
    from qanas.space.bits import parse_config

    for j, checkpoint in enumerate(config.compare or ()):
        other = _scorer(config, checkpoint)
        if other.space.name != space.name:
            raise ConfigError(f"--compare {checkpoint} is a {other.space.name!r} supernet, "
                              f"--supernet is {space.name!r}; compare supernets of one space")
        label = _label(checkpoint)
        if label in proxies:
            label += f" [compare {j + 1}]"
        values = [other.evaluator.score(parse_config(r["arch"]))["miou"] for r in rows]
        for r, v in zip(rows, values, strict=True):
            r.setdefault("compare_miou", v)  # the first --compare's (what the report draws)
            r.setdefault("compare_mious", {})[label] = v
        proxies[label] = _as_float(values)


def run_rankcorr(config: RankCorrConfig, log: Callable[[str], None] | None = None) -> dict:
    """Runs the study of `config` (see the module docstring); `log` receives progress lines.

    Returns:
        The ``rankcorr.json`` summary: {"space", "n", "pool", "kendall_tau",
        "spearman_rho", "top_k", "correlations", "baselines", "selection",
        "bootstrap_resamples", "subnets", "standalone", "seed_agreement", "files"}.
    """
    from qanas.cost.hardware import HardwareCostModel
    from qanas.space.geometry import check_image_size
    from qanas.utils.io import atomic_write_json, check_output_dir, write_run_metadata
    from targets import get_target

    log = log or (lambda line: None)
    out = check_output_dir(config.out)
    out.mkdir(parents=True, exist_ok=True)
    write_run_metadata(out, {"command": "rankcorr", **config.to_dict()}, config.seed)
    setup = _scorer(config, config.supernet)
    space = setup.space
    check_image_size(space, setup.image_size,
                     "--image-size" if config.image_size else "the checkpoint's image size")
    hw = HardwareCostModel(space, get_target(config.target), setup.image_size,
                           setup.num_classes)
    pool = sample_pool(space, config.pool_size, config.seed)
    scores = pool_scores(out, pool, setup, hw, config.target, log)
    seed_arch = space.seed_config().to_str()
    chosen = _choose(config, list(pool), scores, seed_arch)
    atomic_write_json(out / "selection.json", {"chosen": chosen})
    results = standalone_results(config, chosen, out, log)
    seeds = config.seeds()
    rows = _rows(chosen, scores, results, seeds, setup, seed_arch)
    truth = _as_float(r["standalone_miou"] for r in rows)

    def correlate(values):
        return rank_correlation(values, truth, config.top_k, config.bootstrap,
                                config.seed).to_dict()

    label = _label(config.supernet)
    proxies = {label: _as_float(r["supernet_miou"] for r in rows)}
    _compare(config, rows, space, proxies)
    correlations = {name: correlate(values) for name, values in proxies.items()}
    # Trivial rankers: a bigger (slower) subnet ranks higher. A supernet that does not
    # beat these adds nothing to a search that already knows the costs.
    baselines = {name: correlate([float(r[key]) for r in rows]) for name, key in
                 (("macs", "macs"), ("params", "params"),
                  (f"latency ({config.target})", "latency"))}
    first = correlations[label]
    plot = plot_rank_scatter(out / "scatter.png", truth, proxies,
                             title=f"{space.name}: n={len(rows)}\n" + ", ".join(
                                 f"{k}: tau={v['kendall_tau']:.2f}" for k, v in
                                 correlations.items() if v["kendall_tau"] is not None))
    recipe = results[(chosen[0], seeds[0])].get("standalone_config", {})
    summary = {"space": space.name, "n": len(rows), "pool": len(pool),
               "kendall_tau": first["kendall_tau"], "spearman_rho": first["spearman_rho"],
               "top_k": first["top_k"], "correlations": correlations,
               "baselines": baselines, "selection": config.select,
               "bootstrap_resamples": config.bootstrap, "subnets": rows,
               "standalone": {"epochs": config.epochs, "qat": config.qat, "init": config.init,
                              "seeds": seeds,
                              "recipe": {k: v for k, v in recipe.items()
                                         if k not in ("arch", "seed")}},
               "seed_agreement": seed_agreement(rows, seeds, config.top_k),
               "files": {"json": str(out / "rankcorr.json"), "scatter": str(plot)}}
    atomic_write_json(out / "rankcorr.json", summary)
    return summary


__all__ = ["run_rankcorr", "seed_agreement"]
