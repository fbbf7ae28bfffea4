"""The supernet registry: every registered space has a supernet, found by the space's class."""

from __future__ import annotations

import pytest

from qanas.space import get_space, list_spaces
from qanas.space.base import Decision, SearchSpace, SubnetConfig
from qanas.space.restricted import RestrictedSpace
from qanas.supernet import build_supernet
from targets.registry import UnknownNameError


@pytest.mark.parametrize("name", list_spaces())
def test_every_registered_space_builds_its_supernet(name):
    space = get_space(name)
    net = build_supernet(space, 5)
    assert net.space is space and net.num_classes == 5
    assert net.active == space.max_config()


def test_a_restricted_space_shares_its_base_supernet():
    base = get_space("squeezenas-small")
    narrowed = RestrictedSpace(base, {base.decisions[0].name: base.decisions[0].options[:2]})
    assert narrowed.supernet_space is base
    assert build_supernet(narrowed, 3).space is base


class _Unbuilt(SearchSpace):
    """A space no supernet is registered for."""

    name = "unbuilt"
    decisions = (Decision("only", ("a", "b")),)

    def max_config(self) -> SubnetConfig:
        return SubnetConfig(self.name, (1,))

    def min_config(self) -> SubnetConfig:
        return SubnetConfig(self.name, (0,))

    def seed_config(self) -> SubnetConfig:
        return self.max_config()

    def layer_specs(self, cfg, image_size):
        return []


def test_an_unregistered_space_names_the_registered_ones():
    with pytest.raises(UnknownNameError, match="unknown supernet '_Unbuilt'.*SqueezeNASSpace"):
        build_supernet(_Unbuilt(), 3)
