"""qanas.cost.lut: per-block latency tables measured on the target's runner.

`table` (`LatencyLUT`, `LUTLatencyModel`, `build_lut`), `measure` (compile and run one
model: `CompiledModelMeasurer`), `committed` (the tables in `targets/luts/` and their
exact-match lookup: `find_lut`, `latency_lut_model`), `validation` (held-out subnets
measured end to end against the table's prediction: `validate_lut`).
"""

from qanas.cost.lut.committed import find_lut, latency_lut_model
from qanas.cost.lut.table import LatencyLUT, LUTLatencyModel, build_lut

__all__ = ["LUTLatencyModel", "LatencyLUT", "build_lut", "find_lut", "latency_lut_model"]
