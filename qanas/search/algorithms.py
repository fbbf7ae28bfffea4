"""Search algorithms by name (`ALGORITHMS`) and `run_search`, the driver that runs one.

Registered: ``nsga2`` (pymoo NSGA-II over a `SubnetProblem`), ``random``, ``gumbel``
(`qanas.search.gumbel.sampling`) and ``coordinate-descent``
(`qanas.search.coordinate_descent`); each is a `SearchAlgorithm` function.

Random and NSGA-II spend a budget of *distinct subnets evaluated* and return a
`SearchResult` whose front is the feasible non-dominated set (pymoo's
`NonDominatedSorting`) over every subnet the run evaluated, not only the last
population. Gumbel (`qanas.search.gumbel`) scores at most `budget` distinct
samples of a learned distribution and takes the front the same way. All are
seeded: the same seed, space, budget and scorer give the same front, and a
resumed run replays the same decisions while the archive answers the subnets
already scored.

Example:
    >>> result = run_search("nsga2", evaluation, budget=200, seed=0)  # doctest: +SKIP
    >>> [r.arch for r in result.front]  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2
from pymoo.core.callback import Callback
from pymoo.operators.crossover.sbx import SBX
from pymoo.operators.mutation.pm import PM
from pymoo.operators.repair.rounding import RoundingRepair
from pymoo.optimize import minimize

from qanas.errors import ConfigError
from qanas.search.archive import EvalRecord
from qanas.search.coordinate_descent import coordinate_descent_search
from qanas.search.gumbel.sampling import gumbel_sample_search
from qanas.search.problem import DEFAULT_OBJECTIVES, SubnetEvaluation, SubnetProblem
from qanas.search.result import Progress, SearchResult, pareto_front, search_result
from targets.registry import Registry

SearchAlgorithm = Callable[..., SearchResult]
"""``(evaluation, budget, seed, objectives, progress, **options) -> SearchResult``: spends at
most `budget` distinct subnets of `evaluation` (pymoo's `minimize(problem, algorithm)` shape:
the evaluation is the problem, the registered function the algorithm)."""

ALGORITHMS: Registry[SearchAlgorithm] = Registry("search algorithm")


def random_search(evaluation: SubnetEvaluation, budget: int, seed: int,
                  objectives: Sequence[str] = DEFAULT_OBJECTIVES,
                  progress: Progress | None = None) -> SearchResult:
    """`budget` distinct subnets drawn with `space.sample` from a seeded generator."""
    space = evaluation.space
    rng = np.random.default_rng(seed)
    chosen: dict[str, object] = {}
    tries = 0
    while len(chosen) < min(budget, space.cardinality) and tries < 50 * budget:
        cfg = space.sample(rng)
        chosen.setdefault(cfg.to_str(), cfg)
        tries += 1
    from qanas.distributed import current
    from qanas.search.sharding import evaluate_many

    # One subnet per rank per round (one in a single process): torchrun ranks share the work.
    configs, step = list(chosen.values()), current().world_size
    records: list[EvalRecord] = []
    for start in range(0, len(configs), step):
        records.extend(evaluate_many(evaluation, configs[start:start + step]))
        if progress is not None:
            progress(len(records), pareto_front(records, evaluation, objectives))
    return search_result("random", objectives, records, evaluation)


class _GenerationCallback(Callback):
    """After each generation: report progress, and shrink the last generation to the budget.

    pymoo stops on ``n_eval`` only between generations, so a budget that is not a
    multiple of the population size would be overrun; the last generation breeds only
    the evaluations left.
    """

    def __init__(self, evaluation: SubnetEvaluation, objectives, budget: int,
                 progress: Progress | None):
        super().__init__()
        self.evaluation, self.objectives, self.progress = evaluation, objectives, progress
        self.budget = int(budget)

    def notify(self, algorithm):
        left = self.budget - algorithm.evaluator.n_eval
        if left > 0:
            algorithm.n_offsprings = min(algorithm.pop_size, left)
        if self.progress is not None:
            records = list(self.evaluation.seen.values())
            self.progress(algorithm.evaluator.n_eval,
                          pareto_front(records, self.evaluation, self.objectives))


def initial_population(space, pop_size: int, seed: int) -> np.ndarray:
    """NSGA-II's first population: the min, max and seed networks, then seeded random rows.

    Random rows of a space with many decisions all land near the middle of the
    latency range (a sum of many independent choices), and a short NSGA-II run
    never reaches the ends; with the space's extremes in the first population the
    front spans the fastest to the largest subnet from the first generation on.
    """
    anchors = dict.fromkeys(tuple(space.encode(c)) for c in
                            (space.min_config(), space.max_config(), space.seed_config()))
    rows = [np.asarray(a, dtype=int) for a in anchors][:pop_size]
    rng = np.random.default_rng(seed)
    upper = np.asarray(space.upper_bounds, dtype=int)
    while len(rows) < pop_size:
        rows.append(space.encode(space.decode(rng.integers(0, upper + 1))))
    return np.stack(rows).astype(int)


def nsga2_search(evaluation: SubnetEvaluation, budget: int, seed: int,
                 objectives: Sequence[str] = DEFAULT_OBJECTIVES, pop_size: int | None = None,
                 progress: Progress | None = None) -> SearchResult:
    """pymoo NSGA-II over the integer encoding, seeded, stopped after `budget` evaluations.

    Operators: `initial_population` (the space's min, max and seed networks, then
    seeded random rows); SBX crossover and polynomial mutation with
    `RoundingRepair` (integer genes); then `SpaceRepair` (the space's own
    decode/repair); duplicates are eliminated so evaluations are spent on new subnets.
    """
    from qanas.search.problem import SpaceRepair

    pop_size = min(pop_size or max(4, min(40, budget // 4)), budget)
    problem = SubnetProblem(evaluation, objectives)
    algorithm = NSGA2(
        pop_size=pop_size,
        sampling=initial_population(evaluation.space, pop_size, seed),
        crossover=SBX(prob=0.9, eta=15, vtype=float, repair=RoundingRepair()),
        mutation=PM(eta=20, vtype=float, repair=RoundingRepair()),
        repair=SpaceRepair(evaluation.space),
        eliminate_duplicates=True,
    )
    evaluation.seen.clear()
    callback = _GenerationCallback(evaluation, problem.objective_names, budget, progress)
    minimize(problem, algorithm, ("n_eval", budget), seed=seed, verbose=False, callback=callback)
    return search_result("nsga2", problem.objective_names, list(evaluation.seen.values()),
                         evaluation)


def _gumbel(evaluation: SubnetEvaluation, budget: int, seed: int, objectives: Sequence[str],
            progress: Progress | None = None, distribution=None) -> SearchResult:
    if distribution is None:
        raise ConfigError("gumbel search samples a learned distribution: run "
                          "qanas.search.gumbel.learn_distribution and pass distribution=")
    return gumbel_sample_search(evaluation, distribution, budget, seed, objectives, progress)


def _nsga2(evaluation: SubnetEvaluation, budget: int, seed: int, objectives: Sequence[str],
           progress: Progress | None = None) -> SearchResult:
    return nsga2_search(evaluation, budget, seed, objectives, progress=progress)


for _name, _search in (("nsga2", _nsga2), ("random", random_search), ("gumbel", _gumbel),
                       ("coordinate-descent", coordinate_descent_search)):
    ALGORITHMS.register(_name, _search)


def run_search(algorithm: str, evaluation: SubnetEvaluation, budget: int, seed: int,
               objectives: Sequence[str] = DEFAULT_OBJECTIVES,
               progress: Progress | None = None, **options) -> SearchResult:
    """Runs the algorithm registered as `algorithm` in `ALGORITHMS` (nsga2, random, gumbel,
    coordinate-descent); `options` that are not None go to it.

    ``gumbel`` scores samples of a distribution learned beforehand
    (`qanas.search.gumbel.learn_distribution`), passed as ``distribution=``.

    Raises:
        ConfigError: an unknown algorithm, a budget < 1, or gumbel without a distribution.
    """
    check_algorithm(algorithm)
    if int(budget) < 1:
        raise ConfigError(f"--budget must be a positive number of subnets, got {budget}")
    given = {k: v for k, v in options.items() if v is not None}
    return ALGORITHMS.get(algorithm)(evaluation, int(budget), seed, objectives, progress, **given)


def check_algorithm(algorithm: str) -> None:
    """Raises `ConfigError` unless `algorithm` is registered in `ALGORITHMS`."""
    if algorithm not in ALGORITHMS:
        raise ConfigError(f"unknown search algorithm {algorithm!r}; choose one of "
                          f"{', '.join(ALGORITHMS)}")
