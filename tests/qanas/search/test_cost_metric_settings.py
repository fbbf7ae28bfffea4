"""The metric set of a search's archive follows everything its costs depend on."""

from __future__ import annotations

from compiler.version import KERNEL_GENERATION
from compiler.workspace import ScratchCache
from qanas.cost.factory import CostModelChoice
from qanas.cost.hardware import HardwareCostModel
from qanas.cost.sram import CompiledSramModel
from qanas.search.archive import metric_set_key
from qanas.space import get_space
from targets import get_target


def _choice(optimise: str) -> CostModelChoice:
    space, target = get_space("squeezenas-small"), get_target("cortex-m4")
    sram = CompiledSramModel(space, target, (64, 128), 6, optimise=optimise,
                             scratch_cache=ScratchCache())
    model = HardwareCostModel(space, target, (64, 128), 6, sram_model=sram)
    return CostModelChoice(model=model, space=space)


def test_sram_settings_are_part_of_the_metric_set():
    size, speed = _choice("size").metric_settings(), _choice("speed").metric_settings()
    assert size["sram"]["kernel_generation"] == KERNEL_GENERATION
    assert (size["sram"]["optimise"], speed["sram"]["optimise"]) == ("size", "speed")
    assert metric_set_key(**size) != metric_set_key(**speed)
