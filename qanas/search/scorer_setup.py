"""What a search needs from a supernet checkpoint: the scorer and the provenance of its scores.

`build_scorer(ScorerConfig)` loads a checkpoint and its datasets and returns a
`ScorerSetup`. It is the one place the search job (`qanas.search.job.run`)
gets its scorer from: tests and studies that score with something cheaper replace
`qanas.search.job.build_scorer`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from qanas.search.problem import Evaluator
from qanas.utils.io import file_sha256


@dataclass(frozen=True)
class ScorerConfig:
    """Which weights score subnets, on which data.

    Attributes:
        supernet: checkpoint from `qanas train-supernet`.
        image_size: scoring resolution (None: the checkpoint's).
        data_root: dataset folder (None: the checkpoint's).
        seed: seed of the data.
        val_fraction: share of the validation set used for mIoU.
    """

    supernet: str
    image_size: tuple[int, int] | None = None
    data_root: str | None = None
    seed: int = 0
    val_fraction: float = 0.2


@dataclass
class ScorerSetup:
    """What the search needs from a checkpoint: the scorer and the provenance of its scores."""

    evaluator: Evaluator
    space: object
    num_classes: int
    image_size: tuple[int, int]
    checkpoint_sha256: str
    metric_settings: dict


class SupernetEvaluator:
    """`Evaluator` over `qanas.score.SubnetScorer`: quantized and float mIoU of a subnet."""

    def __init__(self, scorer):
        self.scorer = scorer

    def score(self, cfg) -> dict:
        """Scores `cfg`; returns miou, miou_fp32, per-class IoU and seconds."""
        result = self.scorer.score(cfg).to_dict()
        return {k: result[k] for k in ("miou", "miou_fp32", "per_class", "seconds")}


def checkpoint_dataset(meta: dict, data_root: str | None,
                       split: str) -> tuple[str, str | None, dict]:
    """The dataset a checkpoint was trained on: (name, folder, extra build arguments of `split`).

    `data_root` overrides the recorded folder; the synthetic dataset has none and
    gets the split's recorded length (``<split>_length`` of the training config).
    """
    config = meta.get("config") or {}
    dataset, root = meta["dataset"], data_root or config.get("data_root")
    if isinstance(dataset, dict):  # {"name": ..., "root": ...} in checkpoints
        root = data_root or dataset.get("root") or root
        dataset = dataset["name"]
    extra = {}
    if dataset == "synthetic":
        root = None
        if config.get(f"{split}_length"):
            extra["length"] = config[f"{split}_length"]
    return dataset, root, extra


def build_scorer(config: ScorerConfig) -> ScorerSetup:
    """Loads the checkpoint of `config` and its datasets and builds the real scorer."""
    import torch

    from qanas.data import build_dataset, make_loader
    from qanas.quant.spec import QuantSpec
    from qanas.score import SubnetScorer
    from qanas.train import load_supernet

    torch.set_num_threads(max(1, int(os.environ.get("QANAS_THREADS", "1"))))
    supernet, meta = load_supernet(config.supernet)
    image_size = tuple(config.image_size or meta["image_size"])
    dataset, root, val_extra = checkpoint_dataset(meta, config.data_root, "val")

    def loader(split: str, **kw):
        ds = build_dataset(dataset, split, image_size=image_size, root=root, seed=config.seed,
                           **kw)
        return ds, make_loader(ds, batch_size=4, shuffle=False, seed=config.seed)

    train_ds, train_loader = loader("train")
    _, val_loader = loader("val", **val_extra)
    spec = QuantSpec.from_dict(meta.get("quant_spec"))
    scorer = SubnetScorer(supernet, train_loader, val_loader, spec,
                          fraction=config.val_fraction,
                          ignore_index=getattr(train_ds, "ignore_index", 255),
                          image_size=image_size)
    sha = file_sha256(config.supernet)
    settings = {"checkpoint": sha, "dataset": dataset, "image_size": list(image_size),
                "val_fraction": config.val_fraction, "quant_spec": spec.to_dict(),
                "seed": config.seed}
    return ScorerSetup(SupernetEvaluator(scorer), supernet.space, supernet.num_classes,
                       image_size, sha, settings)
