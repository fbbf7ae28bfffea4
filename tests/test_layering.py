"""The import direction of ARCHITECTURE.md: targets ← compiler ← qanas; runtime → targets."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ALLOWED = {
    "targets": set(),
    "compiler": {"targets", "runtime"},
    "runtime": {"targets"},
    "qanas": {"targets", "compiler", "runtime"},
}


def _imported_top_levels(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_lower_layers(package):
    ours = set(ALLOWED)
    for path in (ROOT / package).rglob("*.py"):
        bad = (_imported_top_levels(path) & ours) - ALLOWED[package] - {package}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"
