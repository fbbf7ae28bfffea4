"""`qanas demo`: the whole pipeline on the embedded default (`run_demo`)."""

from qanas.demo.config import QEMU_TARGETS, DemoConfig
from qanas.demo.run import format_table, run_demo

__all__ = ["QEMU_TARGETS", "DemoConfig", "format_table", "run_demo"]
