"""`run(SearchConfig) -> SearchRun`: one search run, as `qanas search` and the demo make it.

Assembles the scorer (`build_scorer`, or one passed in), the target's cost model and
budgets, the archive of the run folder (fresh, resumed or discarded), the algorithm,
the knee of the front and the files: `archive.sqlite` (every evaluated subnet,
resumable), `front.json`, `front.csv`, `pareto.png`, `config.json` (the config and
what the run resolved; `SearchConfig.from_run_dir` reads it back), and `gumbel.json`
for ``algo="gumbel"``. The run holds `qanas.utils.runlock`'s lock on the folder.

Under `torchrun` every process runs it and scores its share of each batch of
subnets (`qanas.search.sharding`); rank 0 alone opens the archive and writes the
folder.

Example:
    >>> from qanas.search import SearchConfig, run
    >>> done = run(SearchConfig(supernet="runs/sq/supernet.pt", target="host",
    ...                         budget=200, out="runs/sq-search"))  # doctest: +SKIP
    >>> done.knee.arch  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path

from qanas.errors import ConfigError
from qanas.search.archive import ARCHIVE_NAME, EvalRecord, metric_set_key
from qanas.search.config import OPTIMISE_MODES, SearchConfig
from qanas.search.problem import Budgets, SubnetEvaluation
from qanas.search.result import SearchResult
from qanas.search.scorer_setup import ScorerConfig, ScorerSetup, build_scorer

__all__ = ["ScorerConfig", "ScorerSetup", "SearchConfig", "SearchRun", "build_scorer", "run"]


@dataclass
class SearchRun:
    """A finished search: the resolved config, what was found, and the files written.

    Attributes:
        config: the config the run used (``supernet`` names the scored weights:
            ``gumbel_supernet.pt`` after a gumbel run with ``train_weights``).
        summary: what `qanas search --json` prints besides the front and the files.
        result: every evaluated record and the Pareto front.
        evaluation: the evaluation the records came from (space, cost model, budgets).
        knee: the chosen subnet of the front (None for an empty front).
        files: the run folder's files by role.
    """

    config: SearchConfig
    summary: dict
    result: SearchResult
    evaluation: SubnetEvaluation
    knee: EvalRecord | None
    files: dict[str, Path]

    def to_dict(self) -> dict:
        """The JSON of `qanas search --json`: the summary, the front rows and the files."""
        from qanas.search.report import front_rows

        return {**self.summary, "front": front_rows(self.result.front),
                "files": {k: str(v) for k, v in self.files.items()}}


def run(config: SearchConfig, scorer: ScorerSetup | None = None) -> SearchRun:
    """Runs the search of `config` in its run folder; returns what it found.

    Args:
        config: the run.
        scorer: an already built scorer and the provenance of its scores (default:
            `build_scorer(config.scorer_config())`, which loads ``config.supernet``
            and its data).

    Raises:
        ConfigError: a value out of range, a resume under other settings, an option
            that does not apply to the target (each names the flag and the fix).
        OutputExistsError: the folder holds an archive and neither resume nor force.
    """
    from qanas.distributed import session

    with session("cpu") as dist:  # scoring runs on CPU: gloo
        return _search(config, dist, scorer)


def _check(config: SearchConfig, dist) -> tuple[str, ...]:
    from qanas.search.algorithms import check_algorithm
    from qanas.search.problem import parse_objectives
    from qanas.search.sharding import SHARDED_ALGORITHMS
    from qanas.utils.checks import check_positive

    objectives = parse_objectives(config.objectives)
    check_algorithm(config.algo)
    if config.budget < 1:
        raise ConfigError(f"--budget must be a positive number of subnets, got {config.budget}")
    check_positive(config.latency_budget, "--latency-budget", "latency units (cycles)")
    check_positive(config.flash_budget, "--flash-budget", "bytes")
    if config.bits != "w8" and config.algo == "gumbel":
        raise ConfigError(f"--bits {config.bits} is searched by nsga2 and random; --algo gumbel "
                          "has no bit decisions (its gates are per block)")
    if config.allow_new_metric_set and not config.resume:
        raise ConfigError("--allow-new-metric-set only applies with --resume; drop it")
    if config.optimise not in OPTIMISE_MODES:
        raise ConfigError(f"--optimise {config.optimise!r} is not a compiler mode; choose one "
                          f"of {', '.join(OPTIMISE_MODES)}")
    if dist.is_distributed and config.algo not in SHARDED_ALGORITHMS:
        raise ConfigError(f"--algo {config.algo} runs in one process; launch it without "
                          f"torchrun, or use one of {', '.join(SHARDED_ALGORITHMS)} under "
                          "torchrun")
    return objectives


def _budgets(target, latency: float | None, flash: int | None = None) -> Budgets:
    from qanas.cost import target_budgets

    limits = target_budgets(target)
    if flash is not None:  # --flash-budget tightens the target's weights region
        region = limits["flash_bytes"]
        limits["flash_bytes"] = int(flash) if region is None else min(int(flash), region)
    budgets = Budgets(**limits, latency=latency)
    for name, unit in (("sram_bytes", "SRAM"), ("flash_bytes", "weights memory")):
        value = getattr(budgets, name)
        if value is not None and value <= 0:
            raise ConfigError(f"target {target.name} has a {unit} budget of {value} bytes; "
                              f"fix the size of its memory region in its target definition")
    return budgets


def _search(config: SearchConfig, dist, scorer: ScorerSetup | None) -> SearchRun:
    from qanas.search.algorithms import run_search
    from qanas.search.bits import check_bits, mixed_precision
    from qanas.search.report import write_front
    from qanas.search.resume import check_resume_settings, open_archive, run_settings
    from qanas.space.geometry import check_image_size
    from qanas.utils.io import check_output_dir, write_run_metadata
    from qanas.utils.progress import progress
    from qanas.utils.runlock import lock_run_dir
    from targets import get_target

    objectives = _check(config, dist)
    target = get_target(config.target)
    check_bits(config.bits, target)
    out = check_output_dir(config.out)
    lock = dist.on_main(lambda: lock_run_dir(out, "search"))
    archive = None
    try:
        archive = dist.on_main(lambda: open_archive(out, config.resume, config.force))
        gumbel = None
        if config.algo == "gumbel":  # learn the distribution first: it may retrain the weights
            from qanas.search.gumbel.phase import learn_for_search

            gumbel = learn_for_search(config, target, out)
            config = dataclasses.replace(config, supernet=gumbel.scored_checkpoint)
        setup = scorer if scorer is not None else build_scorer(config.scorer_config())
        check_image_size(setup.space, setup.image_size,
                         "--image-size" if config.image_size else "the checkpoint's image size")
        budgets = _budgets(target, config.latency_budget, config.flash_budget)
        from qanas.cost import cost_model_for

        costs = cost_model_for(target, setup.space, setup.image_size, setup.num_classes,
                               lut=config.lut, no_lut=config.no_lut, run_dir=out,
                               seed=config.seed, optimise=config.optimise,
                               log=lambda m: print(m, file=sys.stderr))
        mixed_precision(setup, costs, config.bits, target)
        # archived costs come from this model: another table or Vela setting is another metric set
        hw, setup.space = costs.model, costs.space
        setup.metric_settings = {**setup.metric_settings, **costs.metric_settings()}
        metric_set = metric_set_key(**setup.metric_settings)
        settings = run_settings(setup.metric_settings, target.name, budgets)
        dist.on_main(lambda: check_resume_settings(archive, settings, config.resume,
                                                   config.allow_new_metric_set))
        recorded = {"command": "search", **config.to_dict()}
        recorded.update(objectives=list(objectives), metric_set=metric_set,
                        budgets=budgets.__dict__, space=setup.space.name,
                        image_size=list(setup.image_size), metric_settings=setup.metric_settings)
        dist.on_main(lambda: write_run_metadata(out, recorded, config.seed))
        evaluation = SubnetEvaluation(setup.space, hw, setup.evaluator, archive, metric_set,
                                      budgets, setup.checkpoint_sha256, config.seed)
        bar = progress(total=config.budget, desc=f"search {config.algo}", unit="subnet",
                       **({} if dist.is_main else {"disable": True}))

        def report(done: int, front) -> None:
            best = max((r.miou for r in front), default=float("nan"))
            bar.update(max(0, min(done, config.budget) - bar.n))
            bar.set_postfix(front=len(front), best_miou=f"{best:.4f}",
                            cached=evaluation.cache_hits)

        result = run_search(config.algo, evaluation, config.budget, config.seed, objectives,
                            report, distribution=gumbel.distribution if gumbel else None)
        bar.close()
        summary = {"algorithm": config.algo, "target": target.name, "space": setup.space.name,
                   "objectives": list(objectives), "budget": config.budget,
                   "evaluated": len(result.records), "scored": result.scored,
                   "cache_hits": result.cache_hits, "metric_set": metric_set,
                   "budgets": budgets.__dict__, "checkpoint_sha256": setup.checkpoint_sha256,
                   "latency_lut": None if costs.latency_table is None else str(costs.latency_table),
                   "optimise": config.optimise}
        knee = None
        if result.front:
            from qanas.search.select import knee_point

            knee = knee_point(result.front, evaluation, objectives)
            summary["knee"] = knee.arch
        if costs.npu is not None:
            summary["npu_pruning"] = costs.npu.summary()
        if gumbel is not None:
            summary["gumbel"] = gumbel.summary
        paths = dist.on_main(lambda: write_front(out, result, summary), share=True)
    finally:
        if archive is not None:
            archive.close()
        if lock is not None:
            lock.release()
    files = {**paths, "archive": out / ARCHIVE_NAME, "config": out / "config.json"}
    return SearchRun(config, summary, result, evaluation, knee, files)
