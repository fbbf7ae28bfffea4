"""`qanas search --algo gumbel`: the learning phase that runs before any subnet is scored.

Loads the checkpoint (its own copy of the supernet) and its training split,
builds the per-choice costs of the latency term from the chosen source (the
measured LUT, the analytic cycle model of the target, or MACs), learns the
architecture distribution (`qanas.search.gumbel.learn_distribution`), draws
the samples and writes ``gumbel.json`` into the run directory: the resolved
knobs, learned logits and probabilities per decision, pruned options, the τ
schedule and loss curve, the expected latency, and which samples are scored.

With ``--train-weights`` the jointly updated weights are saved as
``gumbel_supernet.pt`` in the run directory and the scorer reads them, so the
scores (and the metric set, keyed by the checkpoint's sha256) belong to them.
"""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import dataclass
from pathlib import Path

from qanas.errors import ConfigError
from qanas.search.gumbel import (
    ChoiceCosts,
    GumbelConfig,
    GumbelDistribution,
    choice_costs,
    learn_distribution,
    log_probability,
    select_samples,
)

GUMBEL_JSON = "gumbel.json"
GUMBEL_CHECKPOINT = "gumbel_supernet.pt"
LATENCY_SOURCES = ("lut", "analytic", "macs")


def add_gumbel_arguments(parser: argparse.ArgumentParser) -> None:
    """The `--algo gumbel` flags of `qanas search`."""
    g = parser.add_argument_group("gumbel (differentiable search, --algo gumbel)")
    d = GumbelConfig()
    g.add_argument("--gumbel-steps", type=int, default=d.steps,
                   help=f"architecture steps, one batch each (default {d.steps})")
    g.add_argument("--alpha", type=float, default=d.alpha,
                   help=f"weight of E[latency]/latency(seed) in the loss (default {d.alpha})")
    g.add_argument("--samples", type=int, default=d.samples,
                   help=f"subnets drawn from the learned distribution (default {d.samples}); "
                        "the --budget most probable distinct ones are scored")
    g.add_argument("--tau-start", type=float, default=d.tau_start,
                   help=f"initial Gumbel-softmax temperature (default {d.tau_start})")
    g.add_argument("--tau-end", type=float, default=d.tau_end,
                   help=f"final temperature, exponential annealing (default {d.tau_end})")
    g.add_argument("--arch-lr", type=float, default=d.arch_lr,
                   help=f"Adam learning rate of the logits (default {d.arch_lr})")
    g.add_argument("--latency-source", choices=LATENCY_SOURCES,
                   help="per-choice costs of the latency term: lut (--lut FILE, or the "
                        "committed table for this space/target/size/classes), analytic (the "
                        "target's cycle model) or macs (default: the search's latency model: "
                        "lut when a table applies, else analytic)")
    g.add_argument("--train-weights", action="store_true",
                   help="also update the supernet's weights (default: only the logits learn)")
    g.add_argument("--gumbel-batch-size", type=int,
                   help="images per step (default: the checkpoint's training batch size)")


def gumbel_config(args: argparse.Namespace) -> GumbelConfig:
    """The `GumbelConfig` of the parsed flags (validated)."""
    return GumbelConfig(steps=args.gumbel_steps, alpha=args.alpha, tau_start=args.tau_start,
                        tau_end=args.tau_end, arch_lr=args.arch_lr,
                        train_weights=bool(args.train_weights), samples=args.samples,
                        seed=args.seed)


@dataclass(frozen=True)
class GumbelPhase:
    """What the learning phase hands to the search: the distribution and its summary."""

    distribution: GumbelDistribution
    summary: dict
    path: Path


def latency_costs(source: str | None, lut_path: str | None, space, target, image_size,
                  num_classes: int, no_lut: bool = False) -> tuple[ChoiceCosts, str | None]:
    """Per-choice costs from `source` ("lut", "analytic", "macs"); returns (costs, LUT file used).

    With no `source`, the search's own latency model is followed: the table given as
    `lut_path`, else the committed table measured for exactly this space, target, size
    and class count (`qanas.search.lut_registry.find_lut`, skipped with `no_lut`), else
    the target's analytic cycle model.

    Raises:
        ConfigError: an unknown source, or "lut" with no table for this setting.
    """
    from qanas.search.lut_registry import find_lut, latency_lut_model

    if source is None:
        if lut_path is None and not no_lut:
            found = find_lut(space.name, target.name, image_size, num_classes)
            lut_path = None if found is None else str(found)
        source = "lut" if lut_path else "analytic"
    if source not in LATENCY_SOURCES:
        raise ConfigError(f"--latency-source {source!r}: choose one of {', '.join(LATENCY_SOURCES)}")
    if source == "macs":
        from targets import total_macs

        return choice_costs(space, lambda c: float(total_macs(
            space.layer_specs(c, image_size, num_classes))), "macs", "MACs"), None
    if source == "analytic":
        from qanas.search.hw import AnalyticLatencyModel

        model = AnalyticLatencyModel(space, target, image_size, num_classes)
        return choice_costs(space, lambda c: model.predict(c).value, model.source, "cycles"), None
    model, path = latency_lut_model(space, target.name, image_size, num_classes, lut_path)
    if model is None:
        raise ConfigError(f"--latency-source lut needs a table for {space.name} on {target.name} "
                          f"at {list(image_size)} with {num_classes} classes and none is "
                          "committed: pass --lut FILE (`qanas lut build`), or use "
                          "--latency-source analytic")
    return choice_costs(space, lambda c: model.predict(c).value, model.source,
                        model.lut.unit), str(path)


def train_loader(args, meta: dict, image_size, batch_size: int | None):
    """The checkpoint's training split (no augmentation), shuffled with the run's seed."""
    from qanas.data import build_dataset, make_loader

    config = meta.get("config") or {}
    dataset, root = meta["dataset"], args.data_root or config.get("data_root")
    if isinstance(dataset, dict):
        root = args.data_root or dataset.get("root") or root
        dataset = dataset["name"]
    extra = {}
    if dataset == "synthetic":
        root = None
        if config.get("train_length"):
            extra["length"] = config["train_length"]
    ds = build_dataset(dataset, "train", image_size=image_size, root=root, seed=args.seed, **extra)
    batch = int(batch_size or config.get("batch_size") or 4)
    if batch < 1:
        raise ConfigError(f"--gumbel-batch-size must be >= 1, got {batch}")
    loader = make_loader(ds, batch_size=batch, shuffle=True, seed=args.seed, drop_last=True)
    return loader, int(getattr(ds, "ignore_index", 255))


def _finite(value: float) -> float | None:
    """`value`, or None where JSON has no number (a repaired sample's pruned choice: −inf)."""
    return value if math.isfinite(value) else None


def learn_for_search(args: argparse.Namespace, target, out: Path) -> GumbelPhase:
    """Learns the distribution for `qanas search --algo gumbel` and writes DIR/gumbel.json.

    With ``--train-weights`` it also writes DIR/gumbel_supernet.pt and points
    ``args.supernet`` at it, so the scorer built afterwards uses those weights.
    """
    import torch

    from qanas.search.archive import file_sha256
    from qanas.train.checkpoint import load_checkpoint, load_supernet, save_checkpoint
    from qanas.utils.io import atomic_write_json, versions
    from qanas.utils.progress import progress

    config = gumbel_config(args)
    if target.npu_config is not None:
        raise ConfigError(f"--algo gumbel does not search NPU targets yet ({target.name}: Vela "
                          "latency over an NPU-pruned space); use --algo nsga2 or random")
    torch.set_num_threads(max(1, int(os.environ.get("QANAS_THREADS", "1"))))
    supernet, meta = load_supernet(args.supernet)
    space = supernet.space
    image_size = tuple(int(v) for v in (args.image_size or meta["image_size"]))
    costs, lut_used = latency_costs(args.latency_source, getattr(args, "lut", None), space,
                                    target, image_size, supernet.num_classes,
                                    no_lut=bool(getattr(args, "no_lut", False)))
    loader, ignore_index = train_loader(args, meta, image_size, args.gumbel_batch_size)
    bar = progress(total=config.steps, desc=f"gumbel a={config.alpha:g}", unit="step")

    def report(done: int, row: dict) -> None:
        bar.update(done - bar.n)
        bar.set_postfix(ce=f"{row['ce']:.3f}", lat=f"{row['latency_ratio']:.3f}",
                        tau=f"{row['tau']:.2f}")

    dist = learn_distribution(supernet, loader, costs, config, ignore_index, report)
    bar.close()
    source_checkpoint = str(args.supernet)
    if config.train_weights:
        payload = load_checkpoint(args.supernet)
        payload["model"] = supernet.state_dict()
        args.supernet = str(save_checkpoint(out / GUMBEL_CHECKPOINT, payload))
    selection = select_samples(dist, args.budget, args.seed)
    sampling = {"drawn": selection.drawn, "distinct": selection.distinct, "budget": args.budget,
                "scored": [{"arch": c.to_str(), "count": selection.counts[c.to_str()],
                            "log_probability": _finite(log_probability(dist, c))}
                           for c in selection.selected]}
    summary = {"alpha": config.alpha, "steps": config.steps,
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
                "scored_checkpoint": args.supernet, "seed": args.seed, "versions": versions()}
    out.mkdir(parents=True, exist_ok=True)
    path = atomic_write_json(out / GUMBEL_JSON, document)
    return GumbelPhase(dist, summary, path)
