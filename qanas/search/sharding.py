"""Sharded evaluation of a batch of subnets over torchrun ranks; rank 0 owns the archive.

Every rank runs the same search (same seed, so the same random sample and the
same pymoo populations; checked with `DistContext.check_same`). When a batch
of subnets must be evaluated, `evaluate_many`:

1. rank 0 looks every subnet up in the archive and broadcasts the hits;
2. the misses, in batch order, are dealt round-robin (rank r takes misses
   r, r + W, ...) and each rank computes its records (`SubnetEvaluation.compute`:
   hardware profile, then the scorer when the profile fits the budgets);
3. the records are all-gathered; rank 0 stores them in batch order (so the
   archive's rows are the single-process rows, in the same order) and broadcasts
   the stored records, so every rank holds the same `seen`, `scored` and
   `cache_hits` and feeds pymoo the same objective values.

Only rank 0 opens the SQLite file: no two processes ever write it, and on
several nodes the other ranks need no access to the run directory.
`ShardedRunner` plugs this into pymoo as an ``elementwise_runner``, so a
generation's whole population is scored in parallel.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from qanas.distributed import DistContext, current, digest
from qanas.search.archive import EvalRecord
from qanas.space.base import SubnetConfig

SHARDED_ALGORITHMS = ("random", "nsga2")
"""Algorithms whose evaluations go through `evaluate_many` (the ones torchrun can share)."""


def evaluate_many(evaluation, configs: Sequence[SubnetConfig],
                  dist: DistContext | None = None) -> list[EvalRecord]:
    """The records of `configs` (archived or evaluated), sharded over the ranks.

    With one process this is ``[evaluation(cfg) for cfg in configs]``.

    Args:
        evaluation: the `qanas.search.problem.SubnetEvaluation` (its archive is
            only used on rank 0; other ranks may pass ``archive=None``).
        configs: the batch, identical on every rank.
        dist: the process group (default: `qanas.distributed.current()`).
    """
    dist = current() if dist is None else dist
    if not dist.is_distributed:
        return [evaluation(cfg) for cfg in configs]
    archs = [cfg.to_str() for cfg in configs]
    dist.check_same(digest(archs), "the subnets of this evaluation batch")
    by_arch = dict(zip(archs, configs, strict=True))
    hits = dist.on_main(lambda: _lookup(evaluation, by_arch), share=True)
    todo = [a for a in by_arch if a not in hits]
    mine = todo[dist.rank::dist.world_size]
    before = evaluation.scored
    computed = [evaluation.compute(by_arch[a]) for a in mine]
    gathered = dist.all_gather_object((computed, evaluation.scored - before))
    evaluation.scored = before + sum(n for _, n in gathered)
    new = {}
    for rank, (records, _) in enumerate(gathered):
        new.update(zip(todo[rank::dist.world_size], records, strict=True))
    stored = dist.on_main(lambda: {a: evaluation.archive.put(new[a]) for a in todo}, share=True)
    out = []
    for arch in archs:
        if arch in hits:
            evaluation.cache_hits += 1
            record = hits[arch]
        elif arch in stored:
            record = stored.pop(arch)
        else:  # a repeat of a subnet scored earlier in this batch: the archive would answer it
            evaluation.cache_hits += 1
            record = evaluation.seen[arch]
        evaluation.seen[arch] = record
        out.append(record)
    return out


def _lookup(evaluation, by_arch: dict[str, SubnetConfig]) -> dict[str, EvalRecord]:
    found = {a: evaluation.archive.get(a, evaluation.target, evaluation.metric_set)
             for a in by_arch}
    return {a: r for a, r in found.items() if r is not None and not evaluation.needs_score(r)}


class ShardedRunner:
    """pymoo ``elementwise_runner`` scoring a population with `evaluate_many`.

    pymoo calls it with the per-individual function `f` and the population `X`;
    it returns the same ``{"F": ..., "G": ...}`` dicts `SubnetProblem._evaluate`
    fills, in the order of `X`.
    """

    def __init__(self, problem, dist: DistContext | None = None):
        self.problem = problem
        self.dist = dist

    def __call__(self, f: Callable, X: np.ndarray) -> list[dict]:
        """Evaluates the rows of `X` (integer encodings) as one sharded batch."""
        evaluation = self.problem.evaluation
        configs = [evaluation.space.decode(x) for x in X]
        records = evaluate_many(evaluation, configs, self.dist)
        outs = []
        for record in records:
            out = {"F": evaluation.objectives(record, self.problem.objective_names)}
            if self.problem.n_ieq_constr:
                out["G"] = evaluation.constraints(record)
            outs.append(out)
        return outs
