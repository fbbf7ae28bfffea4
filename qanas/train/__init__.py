"""qanas.train: FairNAS / SPOS supernet training with exact resume and atomic checkpoints.

Example:
    >>> from qanas.train import TrainConfig, SupernetTrainer, load_supernet
    >>> trainer = SupernetTrainer(TrainConfig(space="squeezenas-small", epochs=3),
    ...                           "runs/sq")  # doctest: +SKIP
    >>> trainer.fit()  # doctest: +SKIP
    >>> supernet, meta = load_supernet("runs/sq/supernet.pt")  # doctest: +SKIP
"""

from qanas.train.checkpoint import FORMAT, load_checkpoint, load_supernet, save_checkpoint
from qanas.train.config import TrainConfig
from qanas.train.eval_job import EvalConfig, run_eval
from qanas.train.evaluate import majority_class_miou, recalibrate_bn, subnet_miou
from qanas.train.job import SupernetRun, run_standalone, run_training, train_supernet
from qanas.train.samplers import (
    SAMPLERS,
    FairNASSampler,
    PathSampler,
    SPOSSampler,
    build_sampler,
    fair_sequence,
)
from qanas.train.trainer import CHECKPOINT_NAME, SupernetTrainer, build_datasets

__all__ = [
    "CHECKPOINT_NAME",
    "EvalConfig",
    "FORMAT",
    "SAMPLERS",
    "FairNASSampler",
    "PathSampler",
    "SPOSSampler",
    "SupernetRun",
    "SupernetTrainer",
    "TrainConfig",
    "build_datasets",
    "build_sampler",
    "fair_sequence",
    "load_checkpoint",
    "load_supernet",
    "majority_class_miou",
    "recalibrate_bn",
    "run_eval",
    "run_standalone",
    "run_training",
    "save_checkpoint",
    "subnet_miou",
    "train_supernet",
]
