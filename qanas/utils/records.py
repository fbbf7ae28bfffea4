"""Strict `from_dict` for the frozen dataclasses that configs and results are made of."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, fields
from typing import Any, TypeVar

from qanas.errors import ConfigError


def reject_unknown_keys(cls: type, data: Mapping[str, Any],
                        error: type[Exception] = ConfigError) -> None:
    """Raises `error` naming the keys of `data` that are not fields of dataclass `cls`.

    A typo in a config file or a record from a newer version must not be dropped
    silently; the message lists the valid keys so the user can fix it.
    """
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise error(f"unknown {cls.__name__} keys {unknown}; valid keys: {sorted(known)}")


R = TypeVar("R", bound="JsonRecord")


class JsonRecord:
    """Mixin for a frozen dataclass of plain JSON values: `to_dict` and a strict `from_dict`."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (`from_dict` reads it back)."""
        return asdict(self)

    @classmethod
    def from_dict(cls: type[R], data: Mapping[str, Any]) -> R:
        """Inverse of `to_dict`; rejects unknown keys."""
        reject_unknown_keys(cls, data)
        return cls(**data)
