"""Weight-sharing supernets for the registered search spaces.

Every module in this package that defines a supernet registers it for its space class on
import; they are imported here so that `build_supernet(space, num_classes)` finds all of
them.
"""

import importlib
import pkgutil

from qanas.supernet.base import Supernet
from qanas.supernet.registry import SUPERNETS, build_supernet, register_supernet

for _module in pkgutil.iter_modules(__path__):
    if _module.name not in ("base", "registry"):
        importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["SUPERNETS", "Supernet", "build_supernet", "register_supernet"]
