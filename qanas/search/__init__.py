"""qanas.search: evaluation archive and multi-objective search (costs: `qanas.cost`).

`run(SearchConfig) -> SearchRun` is one whole search run (what `qanas search` and the
demo call); the names below it are its parts.

Example:
    >>> from qanas.search import SearchConfig, run
    >>> done = run(SearchConfig(supernet="supernet.pt", target="host", budget=100,
    ...                         out="runs/search"))  # doctest: +SKIP
    >>> from qanas.search import EvalArchive, SubnetEvaluation, run_search
    >>> evaluation = SubnetEvaluation(space, hw, scorer, EvalArchive(path), key)  # doctest: +SKIP
    >>> result = run_search("nsga2", evaluation, budget=100, seed=0)  # doctest: +SKIP
"""

from qanas.search.algorithms import ALGORITHMS, run_search
from qanas.search.archive import ArchiveError, EvalArchive, EvalRecord, metric_set_key
from qanas.search.config import SearchConfig
from qanas.search.job import SearchRun, run
from qanas.search.problem import Budgets, Evaluator, SubnetEvaluation, SubnetProblem
from qanas.search.result import SearchResult, pareto_front

__all__ = [
    "ALGORITHMS",
    "ArchiveError",
    "Budgets",
    "EvalArchive",
    "EvalRecord",
    "Evaluator",
    "SearchConfig",
    "SearchResult",
    "SearchRun",
    "SubnetEvaluation",
    "SubnetProblem",
    "metric_set_key",
    "pareto_front",
    "run",
    "run_search",
]
