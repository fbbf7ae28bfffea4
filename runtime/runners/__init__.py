"""Runners: build an emitted C project and run it (host now; QEMU and boards register here).

Example:
    >>> from runtime.runners import get_runner
    >>> get_runner("host").name
    'host'
"""

from __future__ import annotations

from collections.abc import Callable

from runtime.runners.base import Runner, RunnerError, RunResult, TensorSpec, check_inputs, read_io
from runtime.runners.host import HostRunner
from targets.registry import Registry

RUNNERS: Registry[Callable[..., Runner]] = Registry("runner")
RUNNERS.register("host", HostRunner)
# Firmware and cross runners (runtime/runners/qemu.py, qemu_user.py, serial.py).
from runtime.runners.qemu import QemuRunner  # noqa: E402
from runtime.runners.qemu_user import QemuUserRunner  # noqa: E402
from runtime.runners.serial import SerialRunner  # noqa: E402

RUNNERS.register("qemu", QemuRunner)
RUNNERS.register("qemu-user", QemuUserRunner)
RUNNERS.register("serial", SerialRunner)


def get_runner(name: str, **options) -> Runner:
    """A new runner registered as `name` (options go to its constructor)."""
    return RUNNERS.get(name)(**options)


__all__ = ["RUNNERS", "HostRunner", "QemuRunner", "QemuUserRunner", "SerialRunner", "RunResult", "Runner", "RunnerError", "TensorSpec",
           "check_inputs", "get_runner", "read_io"]
