from __future__ import annotations

import pytest

from targets.registry import Registry, UnknownNameError


def test_unknown_name_lists_known_names():
    reg = Registry("widget")
    reg.register("a", 1)
    reg.register("b", 2)
    with pytest.raises(UnknownNameError, match="known widgets: a, b"):
        reg.get("c")


def test_register_twice_raises():
    reg = Registry("widget")
    reg.register("a", 1)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a", 2)
