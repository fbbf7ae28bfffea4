"""qanas.score: BN recalibration, mIoU evaluation and float/int8 scoring of subnets."""

from qanas.score.bn import recalibrate_bn
from qanas.score.miou import evaluate_miou
from qanas.score.subnet import (
    SubnetScore,
    SubnetScorer,
    cache_batches,
    merge_batches,
    score_subnet,
    val_subset,
)

__all__ = [
    "SubnetScore",
    "SubnetScorer",
    "cache_batches",
    "evaluate_miou",
    "merge_batches",
    "recalibrate_bn",
    "score_subnet",
    "val_subset",
]
