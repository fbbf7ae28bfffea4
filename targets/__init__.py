"""Targets: devices as plain data (no dependency on the rest of qanas).

Example:
    >>> from targets import get_target
    >>> get_target("host").runner
    'host'
"""

import targets.boards  # noqa: F401  (registers the board variants of the built-in cores)
import targets.npu  # noqa: F401  (registers the Ethos-U NPU targets)
from targets.builtin import TARGETS, register_target
from targets.cost import LayerSpec, peak_activation_elements, total_macs, total_params
from targets.registry import Registry, UnknownNameError
from targets.target import MemoryRegion, NpuConfig, Target, Toolchain


def get_target(name: str) -> Target:
    """The registered target `name`; an unknown name lists the valid ones."""
    return TARGETS.get(name)


def list_targets() -> list[str]:
    """Names of all registered targets."""
    return TARGETS.names()


__all__ = [
    "LayerSpec",
    "MemoryRegion",
    "NpuConfig",
    "Registry",
    "TARGETS",
    "Target",
    "Toolchain",
    "UnknownNameError",
    "get_target",
    "list_targets",
    "peak_activation_elements",
    "register_target",
    "total_macs",
    "total_params",
]
