"""qanas.search: evaluation archive, hardware cost per target, and multi-objective search.

Example:
    >>> from qanas.search import EvalArchive, HardwareCostModel, SubnetEvaluation, run_search
    >>> evaluation = SubnetEvaluation(space, hw, scorer, EvalArchive(path), key)  # doctest: +SKIP
    >>> result = run_search("nsga2", evaluation, budget=100, seed=0)  # doctest: +SKIP
"""

from qanas.search.algorithms import ALGORITHMS, SearchResult, pareto_front, run_search
from qanas.search.archive import ArchiveError, EvalArchive, EvalRecord, metric_set_key
from qanas.search.hw import (
    AnalyticLatencyModel,
    HardwareCostModel,
    HardwareProfile,
    Latency,
    LatencyModel,
)
from qanas.search.problem import Budgets, Evaluator, SubnetEvaluation, SubnetProblem

__all__ = [
    "ALGORITHMS",
    "AnalyticLatencyModel",
    "ArchiveError",
    "Budgets",
    "EvalArchive",
    "EvalRecord",
    "Evaluator",
    "HardwareCostModel",
    "HardwareProfile",
    "Latency",
    "LatencyModel",
    "SearchResult",
    "SubnetEvaluation",
    "SubnetProblem",
    "metric_set_key",
    "pareto_front",
    "run_search",
]
