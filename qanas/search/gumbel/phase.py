"""`qanas search --algo gumbel`: the learning phase that runs before any subnet is scored.

Loads the checkpoint (its own copy of the supernet) and its training split,
builds the per-choice costs of the latency term from the chosen source (the
measured LUT, the analytic cycle model of the target, or MACs), learns the
architecture distribution (`qanas.search.gumbel.distribution.learn_distribution`), draws
the samples and writes ``gumbel.json`` into the run directory: the resolved
knobs, learned logits and probabilities per decision, pruned options, the τ
schedule and loss curve, the expected latency, and which samples are scored.

With ``--train-weights`` the jointly updated weights are saved as
``gumbel_supernet.pt`` in the run directory and the scorer reads them, so the
scores (and the metric set, keyed by the checkpoint's sha256) belong to them.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from qanas.errors import ConfigError
from qanas.search.gumbel.distribution import (
    ChoiceCosts,
    GumbelDistribution,
    choice_costs,
    learn_distribution,
)
from qanas.search.gumbel.sampling import log_probability, select_samples

GUMBEL_JSON = "gumbel.json"
GUMBEL_CHECKPOINT = "gumbel_supernet.pt"
LATENCY_SOURCES = ("lut", "analytic", "macs")


@dataclass(frozen=True)
class GumbelPhase:
    """What the learning phase hands to the search: the distribution, its summary, and the
    checkpoint the scorer reads (``gumbel_supernet.pt`` with ``train_weights``)."""

    distribution: GumbelDistribution
    summary: dict
    path: Path
    scored_checkpoint: str


def latency_costs(source: str | None, lut_path: str | None, space, target, image_size,
                  num_classes: int, no_lut: bool = False,
                  optimise: str = "size") -> tuple[ChoiceCosts, str | None]:
    """Per-choice costs from `source` ("lut", "analytic", "macs"); returns (costs, LUT file used).

    With no `source`, the search's own latency model is followed
    (`qanas.cost.latency_model_for`): the table given as `lut_path`, else the committed
    table measured for exactly this space, target, size, class count and ``--optimise``
    mode (skipped with `no_lut`), else the target's analytic cycle model (its coefficients
    fitted on ``--optimise`` builds).

    Raises:
        ConfigError: an unknown source, or "lut" with no table for this setting.
    """
    from qanas.cost import latency_model_for

    model = path = None
    if source is None:
        model, path = latency_model_for(space, target, image_size, num_classes, lut_path, no_lut,
                                        optimise)
        source = "lut" if model is not None else "analytic"
    if source not in LATENCY_SOURCES:
        raise ConfigError(f"--latency-source {source!r}: choose one of {', '.join(LATENCY_SOURCES)}")
    if source == "macs":
        from targets import total_macs

        return choice_costs(space, lambda c: float(total_macs(
            space.layer_specs(c, image_size, num_classes))), "macs", "MACs"), None
    if source == "analytic":
        from qanas.cost.hardware import AnalyticLatencyModel

        model = AnalyticLatencyModel(space, target, image_size, num_classes, optimise)
        return choice_costs(space, lambda c: model.predict(c).value, model.source, "cycles"), None
    if model is None:
        from qanas.cost.lut.committed import latency_lut_model

        model, path = latency_lut_model(space, target.name, image_size, num_classes, lut_path,
                                        optimise)
    if model is None:
        raise ConfigError(f"--latency-source lut needs a table for {space.name} on {target.name} "
                          f"at {list(image_size)} with {num_classes} classes, --optimise "
                          f"{optimise}, and none is committed: pass --lut FILE (`qanas lut "
                          "build`), search with --optimise speed (the mode tables measure), "
                          "or use --latency-source analytic")
    return choice_costs(space, lambda c: model.predict(c).value, model.source,
                        model.lut.unit), str(path)


def train_loader(meta: dict, data_root: str | None, seed: int, image_size,
                 batch_size: int | None):
    """The checkpoint's training split (no augmentation), shuffled with the run's seed."""
    from qanas.data import build_dataset, make_loader
    from qanas.search.scorer_setup import checkpoint_dataset

    config = meta.get("config") or {}
    dataset, root, extra = checkpoint_dataset(meta, data_root, "train")
    ds = build_dataset(dataset, "train", image_size=image_size, root=root, seed=seed, **extra)
    batch = int(batch_size or config.get("batch_size") or 4)
    if batch < 1:
        raise ConfigError(f"--gumbel-batch-size must be >= 1, got {batch}")
    loader = make_loader(ds, batch_size=batch, shuffle=True, seed=seed, drop_last=True)
    return loader, int(getattr(ds, "ignore_index", 255))


def _finite(value: float) -> float | None:
    """`value`, or None where JSON has no number (a repaired sample's pruned choice: −inf)."""
    return value if math.isfinite(value) else None


def learn_for_search(config, target, out: Path) -> GumbelPhase:
    """Learns the distribution for a gumbel search (`config`: a `SearchConfig`); writes
    DIR/gumbel.json.

    With ``train_weights`` it also writes DIR/gumbel_supernet.pt and names it as the
    phase's ``scored_checkpoint``, so the scorer built afterwards uses those weights.
    """
    import torch

    from qanas.train.checkpoint import load_checkpoint, load_supernet, save_checkpoint
    from qanas.utils.io import atomic_write_json, file_sha256, versions
    from qanas.utils.progress import progress

    gumbel = config.gumbel()
    if target.npu_config is not None:
        raise ConfigError(f"--algo gumbel does not search NPU targets yet ({target.name}: Vela "
                          "latency over an NPU-pruned space); use --algo nsga2 or random")
    torch.set_num_threads(max(1, int(os.environ.get("QANAS_THREADS", "1"))))
    supernet, meta = load_supernet(config.supernet)
    space = supernet.space
    image_size = tuple(int(v) for v in (config.image_size or meta["image_size"]))
    costs, lut_used = latency_costs(config.latency_source, config.lut, space, target,
                                    image_size, supernet.num_classes, no_lut=config.no_lut,
                                    optimise=config.optimise)
    loader, ignore_index = train_loader(meta, config.data_root, config.seed, image_size,
                                        config.gumbel_batch_size)
    bar = progress(total=gumbel.steps, desc=f"gumbel a={gumbel.alpha:g}", unit="step")

    def report(done: int, row: dict) -> None:
        bar.update(done - bar.n)
        bar.set_postfix(ce=f"{row['ce']:.3f}", lat=f"{row['latency_ratio']:.3f}",
                        tau=f"{row['tau']:.2f}")

    dist = learn_distribution(supernet, loader, costs, gumbel, ignore_index, report)
    bar.close()
    source_checkpoint = scored_checkpoint = str(config.supernet)
    if gumbel.train_weights:
        payload = load_checkpoint(config.supernet)
        payload["model"] = supernet.state_dict()
        scored_checkpoint = str(save_checkpoint(out / GUMBEL_CHECKPOINT, payload))
    selection = select_samples(dist, config.budget, config.seed)
    sampling = {"drawn": selection.drawn, "distinct": selection.distinct, "budget": config.budget,
                "scored": [{"arch": c.to_str(), "count": selection.counts[c.to_str()],
                            "log_probability": _finite(log_probability(dist, c))}
                           for c in selection.selected]}
    summary = {"alpha": gumbel.alpha, "steps": gumbel.steps,
               "latency_source": costs.source, "latency_unit": costs.unit,
               "cost_model": costs.model, "seed_latency": costs.seed_cost,
               "expected_latency": dist.expected_latency(),
               "expected_latency_ratio": dist.expected_latency_ratio(),
               "fixed_decisions": [d.name for d, r in zip(space.decisions, dist.relaxed,
                                                           strict=True) if not r],
               "samples": selection.drawn, "distinct_samples": selection.distinct,
               "selected": len(selection.selected), "seconds": dist.seconds,
               "file": str(out / GUMBEL_JSON)}
    document = {**dist.to_dict(), "summary": summary, "sampling": sampling,
                "target": target.name, "image_size": list(image_size), "lut": lut_used,
                "checkpoint": source_checkpoint, "checkpoint_sha256": file_sha256(source_checkpoint),
                "scored_checkpoint": scored_checkpoint, "seed": config.seed, "versions": versions()}
    out.mkdir(parents=True, exist_ok=True)
    path = atomic_write_json(out / GUMBEL_JSON, document)
    return GumbelPhase(dist, summary, path, scored_checkpoint)
