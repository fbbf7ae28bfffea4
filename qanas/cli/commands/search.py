"""`qanas search`: multi-objective search over a trained supernet for one target.

Example:
    qanas search --supernet runs/sq/supernet.pt --target host --algo nsga2 --budget 200 \\
        --out runs/sq-search --objectives miou,latency,sram --json

Writes into DIR: `archive.sqlite` (every evaluated subnet, resumable), `front.json`,
`front.csv`, `pareto.png` and `config.json` (and `gumbel.json` for `--algo gumbel`).
`--resume` continues a killed run from its archive (finished subnets are not scored
again); without it a DIR that already holds an archive is refused unless `--force`
starts over. The archive records the settings it was built with (the metric set's
settings, the target and the budgets); `--resume` with settings that differ, which
would silently start another metric set (or keep stale over-budget rows), is refused
with the differing keys named, unless `--allow-new-metric-set`.

One process per DIR: the run holds `qanas.utils.runlock`'s lock on DIR while it
works, and a second `qanas search` on the same DIR is refused with the holder's PID.

Under `torchrun` every process runs this command and scores its share of each
batch of subnets (`qanas.search.sharding`); rank 0 alone opens the archive,
writes DIR and prints the result.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from qanas.cli.command import Command
from qanas.errors import ConfigError
from qanas.search.archive import ARCHIVE_NAME, EvalArchive, file_sha256, metric_set_key
from qanas.search.problem import Budgets, Evaluator

DEFAULT_VAL_FRACTION = 0.2


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


def build_scorer(args: argparse.Namespace) -> ScorerSetup:
    """Loads the checkpoint and its datasets and builds the real scorer.

    Tests replace this function (monkeypatch) to inject a cheap scorer.
    """
    import torch

    from qanas.data import build_dataset, make_loader
    from qanas.quant.spec import QuantSpec
    from qanas.score import SubnetScorer
    from qanas.train import load_supernet

    torch.set_num_threads(max(1, int(os.environ.get("QANAS_THREADS", "1"))))
    supernet, meta = load_supernet(args.supernet)
    config = meta.get("config") or {}
    image_size = tuple(args.image_size or meta["image_size"])
    dataset = meta["dataset"]
    root = args.data_root or config.get("data_root")
    if isinstance(dataset, dict):  # {"name": ..., "root": ...} in checkpoints
        root = args.data_root or dataset.get("root") or root
        dataset = dataset["name"]
    extra = {}
    if dataset == "synthetic":
        root = None
        extra = {k: config[f"{s}_length"] for s, k in (("val", "length"),) if config.get(f"{s}_length")}

    def loader(split: str, **kw):
        ds = build_dataset(dataset, split, image_size=image_size, root=root, seed=args.seed, **kw)
        return ds, make_loader(ds, batch_size=4, shuffle=False, seed=args.seed)

    train_ds, train_loader = loader("train")
    _, val_loader = loader("val", **extra)
    spec = QuantSpec.from_dict(meta.get("quant_spec"))
    scorer = SubnetScorer(supernet, train_loader, val_loader, spec, fraction=args.val_fraction,
                          ignore_index=getattr(train_ds, "ignore_index", 255),
                          image_size=image_size)
    sha = file_sha256(args.supernet)
    settings = {"checkpoint": sha, "dataset": dataset, "image_size": list(image_size),
                "val_fraction": args.val_fraction, "quant_spec": spec.to_dict(), "seed": args.seed}
    return ScorerSetup(SupernetEvaluator(scorer), supernet.space, supernet.num_classes,
                       image_size, sha, settings)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--supernet", required=True, help="checkpoint from `qanas train-supernet`")
    parser.add_argument("--target", required=True, help="target name (see `qanas targets`)")
    parser.add_argument("--algo", default="nsga2",
                        help="nsga2 (default), random, or gumbel (differentiable, see below)")
    parser.add_argument("--budget", type=int, required=True, help="subnets to evaluate")
    parser.add_argument("--out", required=True, help="run directory")
    parser.add_argument("--objectives", default="miou,latency,sram",
                        help="comma-separated: miou, latency, sram, flash (default miou,latency,sram)")
    parser.add_argument("--latency-budget", type=float,
                        help="hard latency limit, in the latency model's unit (cycles)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the search and scoring")
    parser.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"),
                        help="deployment resolution (default: the checkpoint's)")
    parser.add_argument("--val-fraction", type=float, default=DEFAULT_VAL_FRACTION,
                        help="share of the validation set used for mIoU (default 0.2)")
    parser.add_argument("--data-root", help="dataset folder (default: the checkpoint's)")
    parser.add_argument("--resume", action="store_true", help="continue from DIR/archive.sqlite")
    parser.add_argument("--force", action="store_true", help="discard an existing archive in DIR")
    parser.add_argument("--allow-new-metric-set", action="store_true",
                        help="with --resume: accept settings (seed, checkpoint, image size, "
                             "quantization, target, budgets...) that differ from those the "
                             "archive was built with; its earlier rows are then not reused")
    parser.add_argument("--lut", help="measured per-block latency table (`qanas lut build`) "
                                      "instead of the analytic latency model (default: the "
                                      "committed table of this space, target, size and classes)")
    parser.add_argument("--no-lut", action="store_true",
                        help="use the analytic latency model even where a table is committed")
    from qanas.search.gumbel_run import add_gumbel_arguments

    add_gumbel_arguments(parser)


def _open_archive(out: Path, resume: bool, force: bool) -> EvalArchive:
    from qanas.utils.io import OutputExistsError

    path = out / ARCHIVE_NAME
    if resume and force:
        raise ConfigError("--resume keeps the archive and --force discards it; pass one of them")
    if resume and not path.exists():
        raise ConfigError(f"--resume: no archive at {path}; start the run without --resume")
    if path.exists() and not resume:
        if not force:
            raise OutputExistsError(f"{out} already holds a search archive; pass --resume to "
                                    "continue it, --force to start over, or another --out")
        for suffix in ("", "-journal", "-wal", "-shm"):  # a stale journal must not outlive it
            Path(str(path) + suffix).unlink(missing_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    return EvalArchive(path)


RUN_SETTINGS_KEY = "run_settings"


def run_settings(metric_settings: dict, target: str, budgets: Budgets) -> dict:
    """What a resumed search must share with the archive to reuse its rows, as flat JSON.

    The metric set's settings (checkpoint, data, image size, quantization, seed,
    latency table...), the target (a key of every row) and the budgets (an
    over-budget subnet is archived unscored, so a looser budget needs a rescore).
    """
    import json

    flat = {f"budget.{k}": v for k, v in budgets.__dict__.items()}
    flat.update(target=target, **metric_settings)
    return json.loads(json.dumps(flat, sort_keys=True, default=str))  # tuples -> lists


def check_resume_settings(archive: EvalArchive, settings: dict, resume: bool,
                          allow_new: bool) -> None:
    """Refuses `--resume` under settings other than the archive's, then records `settings`.

    Raises:
        ConfigError: naming every differing key with its stored and its new value.
    """
    stored = archive.get_meta(RUN_SETTINGS_KEY)
    if resume and stored is not None and stored != settings and not allow_new:
        keys = sorted(set(stored) | set(settings), key=str)
        diff = "; ".join(f"{k}: {_short(settings.get(k))} (archive: {_short(stored.get(k))})"
                         for k in keys if stored.get(k) != settings.get(k))
        raise ConfigError(
            f"--resume: these settings differ from those {archive.path} was built with: {diff}. "
            f"Under them no earlier row would be reused (a new metric set starts from zero). "
            f"Resume with the original flags, pass --allow-new-metric-set to score under the "
            f"new settings in this archive, or use another --out")
    archive.set_meta(RUN_SETTINGS_KEY, settings)


def _short(value) -> str:
    text = "unset" if value is None else str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _run(args: argparse.Namespace) -> dict:
    from qanas.distributed import session

    with session("cpu") as dist:  # scoring runs on CPU: gloo
        return _search(args, dist)


def _search(args: argparse.Namespace, dist) -> dict:
    from qanas.cli.commands._checks import check_image_size, check_positive
    from qanas.search.algorithms import check_algorithm, run_search
    from qanas.search.hw import HardwareCostModel
    from qanas.search.problem import SubnetEvaluation, parse_objectives
    from qanas.search.report import front_rows, write_front
    from qanas.utils.io import check_output_dir, write_run_metadata
    from qanas.utils.progress import progress
    from qanas.utils.runlock import lock_run_dir
    from targets import get_target

    objectives = parse_objectives(args.objectives)
    check_algorithm(args.algo)
    if args.budget < 1:
        raise ConfigError(f"--budget must be a positive number of subnets, got {args.budget}")
    check_positive(args.latency_budget, "--latency-budget", "latency units (cycles)")
    if args.allow_new_metric_set and not args.resume:
        raise ConfigError("--allow-new-metric-set only applies with --resume; drop it")
    from qanas.search.sharding import SHARDED_ALGORITHMS

    if dist.is_distributed and args.algo not in SHARDED_ALGORITHMS:
        raise ConfigError(f"--algo {args.algo} runs in one process; launch it without torchrun, "
                          f"or use one of {', '.join(SHARDED_ALGORITHMS)} under torchrun")
    target = get_target(args.target)
    out = check_output_dir(args.out)
    lock = dist.on_main(lambda: lock_run_dir(out, "search"))
    archive = None
    try:
        archive = dist.on_main(lambda: _open_archive(out, args.resume, args.force))
        gumbel = None
        if args.algo == "gumbel":  # learn the distribution first: it may retrain the weights
            from qanas.search.gumbel_run import learn_for_search

            gumbel = learn_for_search(args, target, out)
        setup = build_scorer(args)
        check_image_size(setup.space, setup.image_size,
                         "--image-size" if args.image_size else "the checkpoint's image size")
        from qanas.search.hw import target_budgets

        budgets = Budgets(**target_budgets(target), latency=args.latency_budget)
        for name, unit in (("sram_bytes", "SRAM"), ("flash_bytes", "weights memory")):
            value = getattr(budgets, name)
            if value is not None and value <= 0:
                raise ConfigError(f"target {target.name} has a {unit} budget of {value} bytes; "
                                  f"fix the size of its memory region in its target definition")
        latency_model, lut_path = None, getattr(args, "lut", None)
        if lut_path or (target.npu_config is None and not getattr(args, "no_lut", False)):
            from qanas.search.lut_registry import latency_lut_model

            # --lut, else the committed table measured for exactly this setting (if any)
            latency_model, lut_path = latency_lut_model(
                setup.space, target.name, setup.image_size, setup.num_classes, lut_path)
        if latency_model is not None:
            # archived latencies come from the table: another table is another metric set
            setup.metric_settings = {**setup.metric_settings, "latency_lut": file_sha256(lut_path)}
        hw = HardwareCostModel(setup.space, target, setup.image_size, setup.num_classes,
                               latency_model=latency_model)
        npu = None
        if target.npu_config is not None:  # Ethos-U: Vela estimates, NPU-pruned space
            from qanas.search.npu import setup_npu_search

            if latency_model is not None:
                raise ConfigError(f"--lut does not apply to {target.name}: its latency is "
                                  "Vela's estimate; drop --lut")
            npu = setup_npu_search(setup.space, target, setup.image_size, setup.num_classes,
                                   out, seed=args.seed, log=lambda m: print(m, file=sys.stderr))
            hw, setup.space = npu.hw, npu.space
            setup.metric_settings = {**setup.metric_settings, **npu.metric_settings()}
        metric_set = metric_set_key(**setup.metric_settings)
        settings = run_settings(setup.metric_settings, target.name, budgets)
        dist.on_main(lambda: check_resume_settings(archive, settings, args.resume,
                                                   args.allow_new_metric_set))
        config = {k: v for k, v in vars(args).items() if k not in ("json",)}
        config.update(objectives=list(objectives), metric_set=metric_set,
                      budgets=budgets.__dict__, space=setup.space.name,
                      image_size=list(setup.image_size), metric_settings=setup.metric_settings)
        dist.on_main(lambda: write_run_metadata(out, config, args.seed))
        evaluation = SubnetEvaluation(setup.space, hw, setup.evaluator, archive, metric_set,
                                      budgets, setup.checkpoint_sha256, args.seed)
        bar = progress(total=args.budget, desc=f"search {args.algo}", unit="subnet",
                       **({} if dist.is_main else {"disable": True}))

        def report(done: int, front) -> None:
            best = max((r.miou for r in front), default=float("nan"))
            bar.update(max(0, min(done, args.budget) - bar.n))
            bar.set_postfix(front=len(front), best_miou=f"{best:.4f}",
                            cached=evaluation.cache_hits)

        result = run_search(args.algo, evaluation, args.budget, args.seed, objectives, report,
                            distribution=gumbel.distribution if gumbel else None)
        bar.close()
        summary = {"algorithm": args.algo, "target": target.name, "space": setup.space.name,
                   "objectives": list(objectives), "budget": args.budget,
                   "evaluated": len(result.records), "scored": result.scored,
                   "cache_hits": result.cache_hits, "metric_set": metric_set,
                   "budgets": budgets.__dict__, "checkpoint_sha256": setup.checkpoint_sha256,
                   "latency_lut": str(lut_path) if latency_model is not None else None}
        if result.front:
            from qanas.search.select import knee_point

            summary["knee"] = knee_point(result.front, evaluation, objectives).arch
        if npu is not None:
            summary["npu_pruning"] = npu.summary()
        if gumbel is not None:
            summary["gumbel"] = gumbel.summary
        paths = dist.on_main(lambda: write_front(out, result, summary), share=True)
    finally:
        if archive is not None:
            archive.close()
        if lock is not None:
            lock.release()
    return {**summary, "front": front_rows(result.front),
            "files": {k: str(v) for k, v in {**paths, "archive": out / ARCHIVE_NAME,
                                              "config": out / "config.json"}.items()}}


COMMAND = Command(
    name="search",
    help="search a trained supernet for the Pareto front of int8 mIoU vs latency/SRAM/flash",
    add_arguments=_add_arguments,
    run=_run,
)
