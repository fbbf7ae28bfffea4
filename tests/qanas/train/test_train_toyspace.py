"""The toy spaces of `tests.support.toy_space` are sound: the supernet path equals the
extracted subnet, and repair turns a double skip into "k3"."""

from __future__ import annotations

import pytest
import torch

from qanas.supernet import build_supernet
from tests.support.toy_space import TOY, TOY_REPAIR, register_toy_spaces


@pytest.fixture(autouse=True)
def _toy():
    register_toy_spaces()


@pytest.mark.parametrize("name", [TOY, TOY_REPAIR])
def test_toy_supernet_path_equals_extracted_subnet(name):
    from qanas.space import get_space

    space = get_space(name)
    torch.manual_seed(0)
    supernet = build_supernet(space, 6).eval()
    x = torch.randn(2, 3, 8, 16)
    for cfg in (space.max_config(), space.min_config(), space.seed_config()):
        supernet.set_active(cfg)
        assert supernet(x).shape == (2, 6, 8, 16)
        assert torch.allclose(supernet(x), supernet.extract(cfg).eval()(x))


def test_toy_repair_space_rejects_double_skip():
    from qanas.space import get_space

    space = get_space(TOY_REPAIR)
    assert space.decode([0, 3, 1]).choices == (0, 3, 0)
    assert space.decode([0, 3, 0]).choices == (0, 3, 0)
