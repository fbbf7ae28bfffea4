"""Loading the repository's scripts (benchmarks/, scripts/), which are not packages."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def load_script(relative: str) -> ModuleType:
    """The module of the script at `relative` (from the repository root), freshly executed.

    Example:
        >>> load_script("benchmarks/search_hv.py").normalized_hypervolumes  # doctest: +SKIP
    """
    path = ROOT / relative
    spec = importlib.util.spec_from_file_location(f"script_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
