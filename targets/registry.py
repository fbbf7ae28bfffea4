"""A small name → object registry shared by every qanas package.

Targets, search spaces, datasets, planners and pipelines are all looked up by
name. Registering a name twice raises; looking up an unknown name raises an
error that lists the names that exist, so a typo on the command line teaches
the user what to type instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """Raised by `Registry.get` for a name nobody registered."""

    def __str__(self) -> str:  # KeyError quotes its argument; we want the sentence.
        return str(self.args[0])


class Registry(Generic[T]):
    """Maps names to objects (or factories) of one kind.

    Example:
        >>> spaces = Registry("search space")
        >>> spaces.register("tiny", object())
        >>> spaces.get("tiny") is not None
        True
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T) -> T:
        """Registers `item` under `name`; a name can be registered once."""
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = item
        return item

    def decorator(self, name: str) -> Callable[[T], T]:
        """Returns a decorator that registers the decorated object under `name`."""

        def wrap(item: T) -> T:
            return self.register(name, item)

        return wrap

    def get(self, name: str) -> T:
        """Returns the object registered as `name` or raises `UnknownNameError`."""
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(sorted(self._items)) or "(none registered)"
            raise UnknownNameError(
                f"unknown {self.kind} {name!r}; known {self.kind}s: {known}"
            ) from None

    def names(self) -> list[str]:
        """All registered names, sorted."""
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._items)
