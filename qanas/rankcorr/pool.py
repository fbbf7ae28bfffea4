"""The candidate pool of a rank-correlation study: seeded random subnets and their scores."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np

from qanas.space.base import SearchSpace, SubnetConfig


def sample_pool(space: SearchSpace, size: int, seed: int) -> dict[str, SubnetConfig]:
    """The seed network and up to `size` distinct random subnets drawn with `seed`.

    Returns:
        {architecture string: config}, the seed network first. A space with fewer
        subnets gives them all (50 draws per wanted subnet at most).
    """
    rng = np.random.default_rng(seed)
    pool: dict[str, SubnetConfig] = {space.seed_config().to_str(): space.seed_config()}
    want = 1 + size
    for _ in range(50 * want):
        if len(pool) >= min(want, space.cardinality):
            break
        cfg = space.sample(rng)
        pool.setdefault(cfg.to_str(), cfg)
    return pool


def pool_scores(out: Path, pool: dict[str, SubnetConfig], setup, hw, target: str,
                log: Callable[[str], None] = lambda line: None) -> dict[str, dict]:
    """Supernet int8 mIoU and latency of every pool subnet, cached in ``out/pool.json``.

    The cache is keyed by the scoring protocol (`setup.metric_settings`: checkpoint
    sha256, data, val share, quant spec, seed) and the target, so a rerun or a second
    worker on the same ``out`` skips the scoring; it is written after every subnet.

    Args:
        setup: the `qanas.search.scorer_setup.ScorerSetup` of the supernet.
        hw: the cost model giving the latency (`profile(cfg).latency`).
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
        log(f"pool {i + 1}/{len(pool)}: int8 mIoU {scores[arch]['miou']:.4f}  {arch}")
    return scores
