"""The import direction of ARCHITECTURE.md and docs/architecture.md, and no import circles.

Between the top-level packages: targets ← compiler ← qanas; runtime → targets.
Inside `qanas/`, its subpackages form layers (`QANAS_LAYERS`): a module may import
modules of its own subpackage and of lower layers only, so the CLI is the top and
nothing imports it. Over our packages no two modules import each other, directly or
through others (imports under ``if TYPE_CHECKING:`` are not executed and not counted).
"""

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

QANAS_LAYERS = (
    ("errors",),
    ("utils",),
    ("distributed", "data", "bench"),
    ("space",),
    ("supernet",),
    ("quant",),
    ("score",),
    ("train",),
    ("cost",),
    ("search",),
    ("rankcorr",),
    ("report",),
    ("demo",),
    ("cli",),
)
"""Subpackages (or top-level modules) of `qanas`, lowest first; each layer may import the
ones below it, not its neighbours in the same layer nor anything above."""

CIRCLE_FREE = ("targets", "qanas", "compiler")
"""Packages in which no module may take part in an import circle."""


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for package in ALLOWED for p in (ROOT / package).rglob("*.py")}


def _runtime_imports(path: Path) -> list[tuple[str, tuple[str, ...]]]:
    """(module, names) of every import in `path` outside ``if TYPE_CHECKING:`` blocks."""
    tree = ast.parse(path.read_text(), filename=str(path))
    skipped = {id(n) for node in ast.walk(tree)
               if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
               for stmt in node.body for n in ast.walk(stmt)}
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = []
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.extend((alias.name, ()) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            found.append((module, tuple(a.name for a in node.names)))
    return found


def _graph() -> dict[str, set[str]]:
    """Module → the modules of ours it imports (``from pkg import mod`` counts as pkg.mod)."""
    modules = _modules()

    def resolve(name: str) -> str | None:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        targets = set()
        for module, names in _runtime_imports(path):
            hits = [f"{module}.{n}" for n in names if f"{module}.{n}" in modules]
            targets.update(hits or filter(None, [resolve(module)]))
        graph[name] = targets - {name}
    return graph


def _circles(graph: dict[str, set[str]]) -> list[frozenset[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                if len(component) > 1:
                    circles.append(frozenset(component))
    return circles


def _imported_top_levels(path: Path) -> set[str]:
    return {module.split(".")[0] for module, _ in _runtime_imports(path) if module}


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_package_imports_only_lower_layers(package):
    ours = set(ALLOWED)
    for path in (ROOT / package).rglob("*.py"):
        bad = (_imported_top_levels(path) & ours) - ALLOWED[package] - {package}
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}"


def _layer(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "qanas" or len(parts) < 2:
        return None
    for level, names in enumerate(QANAS_LAYERS):
        if parts[1] in names:
            return level
    raise AssertionError(f"{module}: add its subpackage {parts[1]!r} to QANAS_LAYERS")


def test_qanas_subpackages_import_only_lower_layers():
    bad = []
    for module, imported in sorted(_graph().items()):
        mine = _layer(module)
        if mine is None:
            continue
        for other in sorted(imported):
            theirs = _layer(other)
            same = other.split(".")[:2] == module.split(".")[:2]
            if theirs is not None and not same and theirs >= mine:
                bad.append(f"{module} imports {other}")
    assert not bad, "imports against the layers of QANAS_LAYERS:\n" + "\n".join(bad)


def test_no_import_circles():
    circles = [sorted(c) for c in _circles(_graph())
               if any(m.split(".")[0] in CIRCLE_FREE for m in c)]
    assert not circles, f"import circles (each module imports the next, directly or not): {circles}"
