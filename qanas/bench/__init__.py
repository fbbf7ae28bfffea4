"""qanas.bench: running compiled models on a target's runner (QEMU, host, a board)."""

from qanas.bench.runners import compile_if_model, make_runner, memory_summary, random_inputs

__all__ = ["compile_if_model", "make_runner", "memory_summary", "random_inputs"]
