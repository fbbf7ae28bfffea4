"""qanas.bench: running compiled models on a target's runner (QEMU, host, a board).

`run_bench(BenchConfig)` is the job behind `qanas bench`; `qanas.bench.npu` gives Vela's
estimates for an Ethos-U target.
"""

from qanas.bench.job import BenchConfig, run_bench
from qanas.bench.runners import compile_if_model, make_runner, memory_summary, random_inputs

__all__ = ["BenchConfig", "compile_if_model", "make_runner", "memory_summary", "random_inputs",
           "run_bench"]
