"""Search spaces: `SubnetConfig`, `SearchSpace` and the registry of built-in spaces.

Every module in this package that defines a space registers it on import; they
are imported here so that `get_space(name)` sees all of them.
"""

import importlib
import pkgutil

from qanas.space.base import (
    SPACES,
    Decision,
    SearchSpace,
    SubnetConfig,
    register_space,
)

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in ("base",) and not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")


def get_space(name: str) -> SearchSpace:
    """The registered search space `name`; an unknown name lists the registered ones."""
    return SPACES.get(name)


def list_spaces() -> list[str]:
    """Names of all registered search spaces."""
    return SPACES.names()

__all__ = [
    "SPACES",
    "Decision",
    "SearchSpace",
    "SubnetConfig",
    "get_space",
    "list_spaces",
    "register_space",
]
