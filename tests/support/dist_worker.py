"""Program that `tests/qanas/test_distributed.py` launches under torchrun (2 processes, gloo).

    torchrun --standalone --nproc_per_node 2 tests/support/dist_worker.py train OUT
    torchrun --standalone --nproc_per_node 2 tests/support/dist_worker.py search OUT

`train` runs the real `SupernetTrainer` on the toy space and saves, per rank,
`OUT/rank{r}.pt`: the shards of the first global batch, the FairNAS paths of
every step, the weights after three steps with BatchNorm in eval mode, the
weights after a two-epoch fit, and whether a rank drawing other paths was
caught. Rank 0 also leaves the checkpoints of an uninterrupted and of a resumed
run. `search` runs `qanas search` (random and NSGA-II) with the test scorer of
`tests.support.fakes` injected in place of the supernet scorer: the sharding
and the archive writes are the real ones.
"""

from __future__ import annotations

import os
import sys
from itertools import islice
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

TRAIN = dict(image_size=(16, 32), epochs=2, batch_size=4, steps_per_epoch=2, train_length=12,
             val_length=4, val_batches=1, calib_batches=1, seed=1)
EVAL_BN_STEPS = 3
SEARCHES = (("random", 6), ("nsga2", 8))
SEARCH_ARGS = ("--supernet", "unused.pt", "--target", "host", "--seed", "3", "--json")


def train_config(**changes):
    """The toy-space config shared by the workers and the single-process references."""
    from qanas.train import TrainConfig
    from tests.support.toy_space import TOY, register_toy_spaces

    register_toy_spaces()
    return TrainConfig(space=TOY, **{**TRAIN, **changes})


def record_paths(trainer) -> list:
    """Wraps the trainer's sampler so that every step's paths are appended to the list returned."""
    log: list = []
    draw = trainer.sampler.next_paths

    def next_paths():
        paths = draw()
        log.append([cfg.to_str() for cfg in paths])
        return paths

    trainer.sampler.next_paths = next_paths
    return log


def eval_bn_steps(trainer, steps: int = EVAL_BN_STEPS) -> tuple[list, list]:
    """`steps` real train steps with BN in eval mode (batch statistics out of the picture).

    Returns the losses and the (image, mask) batches this process trained on.
    """
    from qanas.train.trainer import epoch_seed

    loader = trainer._loader(trainer.train_set, shuffle=True,
                             seed=epoch_seed(trainer.config.seed, 0))
    trainer.model.eval()
    losses, batches = [], []
    for image, mask in islice(iter(loader), steps):
        batches.append((image, mask))
        losses.append(trainer.train_step(image, mask))
    return losses, batches


def params(model) -> dict:
    """Parameters only (BN running statistics are per rank by design)."""
    return {k: v.detach().clone() for k, v in model.named_parameters()}


def _train(out: Path) -> None:
    from qanas.distributed import DistributedMismatchError, session
    from qanas.train import SupernetTrainer, build_sampler

    with session("cpu") as dist:
        rank = dist.rank
        record = {"world_size": dist.world_size}

        trainer = SupernetTrainer(train_config(optimizer="sgd", epochs=1), out / "eval-bn",
                                  dist=dist)
        paths = record_paths(trainer)
        record["eval_bn_losses"], batches = eval_bn_steps(trainer)
        record["eval_bn_params"] = params(trainer.model)
        record["eval_bn_paths"] = paths
        record["first_shard"] = batches[0]

        full = SupernetTrainer(train_config(), out / "full", dist=dist)
        record["fit_paths"] = record_paths(full)
        record["fit"] = full.fit()
        record["fit_params"] = params(full.model)

        first = SupernetTrainer(train_config(), out / "resumed", dist=dist)
        first.fit(until_epoch=1)
        resumed = SupernetTrainer.from_checkpoint(out / "resumed" / "supernet.pt", dist=dist)
        resumed.fit()

        rogue = SupernetTrainer(train_config(), out / "rogue", dist=dist)
        if rank == 1:  # a rank whose sampler was seeded differently must be caught
            rogue.sampler = build_sampler("fairnas", rogue.space, seed=12345)
        image, mask = next(iter(rogue._loader(rogue.train_set, shuffle=True, seed=0)))
        try:
            rogue.train_step(image, mask)
            record["mismatch_caught"] = False
        except DistributedMismatchError as exc:
            record["mismatch_caught"] = str(exc)
        # a result; a batch that does not split over 2 ranks; a refused --out (rank 0's error)
        record["cli_codes"] = [_train_cli(out / "cli", "4"), _train_cli(out / "bad", "3"),
                               _train_cli(out / "cli", "4")]
        torch.save(record, out / f"rank{rank}.pt")


def _train_cli(out: Path, batch_size: str) -> int:
    """`qanas train-supernet --json` on the toy space; its stdout goes to torchrun's."""
    from qanas.cli import main as cli
    from tests.support.toy_space import TOY

    return cli.main(["train-supernet", "--space", TOY, "--image-size", "16", "32", "--epochs",
                     "1", "--steps-per-epoch", "1", "--batch-size", batch_size,
                     "--train-length", "8", "--val-length", "4", "--val-batches", "1",
                     "--calib-batches", "1", "--out", str(out), "--json"])


def fake_build_scorer(scorer, space, size):
    """A `build_scorer` replacement returning the test scorer (as the `fake_scorer`
    fixture of tests/conftest.py)."""
    from qanas.search import job as search_job

    return lambda args: search_job.ScorerSetup(scorer, space, 4, size, "f" * 64,
                                               {"fake": True, "seed": args.seed})


def _search(out: Path) -> None:
    from qanas.cli import main as cli
    from qanas.search import job as search_job
    from qanas.space import get_space
    from tests.support.fakes import SIZE, FakeScorer

    space = get_space("squeezenas-small")
    scorer = FakeScorer(space)
    search_job.build_scorer = fake_build_scorer(scorer, space, SIZE)
    for algo, budget in SEARCHES:
        code = cli.main(["search", *SEARCH_ARGS, "--algo", algo, "--budget", str(budget),
                         "--out", str(out / algo)])
        if code != 0:
            raise SystemExit(code)
    (out / f"scored-rank{os.environ['RANK']}.txt").write_text("\n".join(scorer.calls))


if __name__ == "__main__":
    torch.set_num_threads(1)
    mode, out_dir = sys.argv[1], Path(sys.argv[2])
    {"train": _train, "search": _search}[mode](out_dir)
