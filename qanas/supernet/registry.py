"""The supernet registry: which `Supernet` builds the modules of a search space.

A search space is a pure description (decisions, plans, layer descriptors); the modules
that hold its weights are built here, by the supernet class registered for the space's
class. A space that narrows or annotates another (`SearchSpace.supernet_space`) shares
that other's supernet.
"""

from __future__ import annotations

from collections.abc import Callable

from qanas.space.base import SearchSpace
from qanas.supernet.base import Supernet
from targets.registry import Registry

SupernetBuilder = Callable[[SearchSpace, int], Supernet]

SUPERNETS: Registry[SupernetBuilder] = Registry("supernet")
"""Space class name → the `Supernet` class (or builder) of that class's spaces."""


def register_supernet(space_class: type[SearchSpace]) -> Callable[[SupernetBuilder], SupernetBuilder]:
    """Decorator: registers a supernet class as the builder of every `space_class` space.

    Example:
        >>> @register_supernet(ToySpace)  # doctest: +SKIP
        ... class ToySupernet(Supernet): ...
    """
    return SUPERNETS.decorator(space_class.__name__)


def build_supernet(space: SearchSpace, num_classes: int) -> Supernet:
    """A weight-sharing supernet covering every subnet of `space`, with `num_classes` outputs.

    The builder is the one registered for the space's class or its nearest registered
    base class; an unregistered space raises `UnknownNameError` listing the registered ones.

    Example:
        >>> net = build_supernet(get_space("mbv2-deeplab"), 19)  # doctest: +SKIP
    """
    space = space.supernet_space
    for cls in type(space).__mro__:
        if cls.__name__ in SUPERNETS:
            return SUPERNETS.get(cls.__name__)(space, int(num_classes))
    return SUPERNETS.get(type(space).__name__)(space, int(num_classes))  # raises, listing the known


__all__ = ["SUPERNETS", "SupernetBuilder", "build_supernet", "register_supernet"]
