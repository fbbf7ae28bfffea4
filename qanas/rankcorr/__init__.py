"""qanas.rankcorr: the rank-correlation study, does the supernet rank subnets like standalone
training does? The figures themselves (Kendall τ, Spearman ρ, top-k overlap, the
selections) are `qanas.score.rankcorr`; this package runs the study `qanas rankcorr` makes.

Example:
    >>> from qanas.rankcorr import RankCorrConfig, run_rankcorr
    >>> run_rankcorr(RankCorrConfig(supernet="runs/fair/supernet.pt",
    ...                             out="runs/rankcorr"))  # doctest: +SKIP
"""

from qanas.rankcorr.config import RankCorrConfig
from qanas.rankcorr.job import run_rankcorr

__all__ = ["RankCorrConfig", "run_rankcorr"]
