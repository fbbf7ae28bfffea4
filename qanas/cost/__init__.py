"""qanas.cost: what a subnet costs on a target, behind one interface.

`CostModel` (`profile(cfg)` → `HardwareProfile`: MACs, params, flash, peak SRAM,
`Latency`; `budgets()`) is answered by `HardwareCostModel` for CPU targets (analytic
counts, the compiler's plan-only arena, and a `LatencyModel`: the measured per-block
table of `qanas.cost.lut` or the analytic `AnalyticLatencyModel`) and by
`VelaCostModel` for Ethos-U targets. `cost_model_for(target, space, size, classes)`
chooses among them; nothing else does.

Example:
    >>> from qanas.cost import cost_model_for
    >>> choice = cost_model_for(get_target("host"), get_space("squeezenas-small"),
    ...                         (64, 128), 4)  # doctest: +SKIP
    >>> choice.model.profile(cfg).sram_bytes  # doctest: +SKIP
"""

from qanas.cost.factory import CostModelChoice, cost_model_for, latency_model_for
from qanas.cost.hardware import (
    AnalyticLatencyModel,
    CostModel,
    HardwareCostModel,
    HardwareProfile,
    Latency,
    LatencyModel,
    target_budgets,
)

__all__ = [
    "AnalyticLatencyModel",
    "CostModel",
    "CostModelChoice",
    "HardwareCostModel",
    "HardwareProfile",
    "Latency",
    "LatencyModel",
    "cost_model_for",
    "latency_model_for",
    "target_budgets",
]
