"""What the MobileNetV2-based spaces share: a supernet layout and a per-config plan.

A MobileNetV2-based space only says how its decisions map to a layout (`layout`, a
`qanas.space.mbv2_layout.MBV2Layout`) and to the active blocks and head of one subnet
(`plan`); the analytic layer list follows from those two, and so does the supernet
(`qanas.supernet.mbv2.MobileNetV2Supernet`, registered for `MobileNetV2PlanSpace`).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence

from qanas.space.base import SearchSpace, SubnetConfig
from qanas.space.mbv2_layout import plan_layer_specs


class MobileNetV2PlanSpace(SearchSpace):
    """Base of spaces whose supernet is `MobileNetV2Supernet`; subclasses set `num_classes`."""

    num_classes: int

    @abstractmethod
    def layout(self):
        """The `MBV2Layout` of the supernet (block slots and widths)."""

    @abstractmethod
    def plan(self, cfg: SubnetConfig):
        """The `MBV2Plan` (active blocks, head, rates) of subnet `cfg`."""

    def gate_units(self, cfg: SubnetConfig) -> dict:
        """Kept block ``features.<i>`` → its `ActiveBlock`; the head → its rates (ASPP)."""
        plan = self.plan(cfg)
        units: dict = {f"features.{ab.index}": ab for ab in plan.blocks}
        units[f"head.{plan.head}"] = tuple(plan.rates) if plan.head == "aspp" else None
        return units

    def layer_specs(self, cfg: SubnetConfig, image_size: Sequence[int],
                    num_classes: int | None = None):
        """Analytic `LayerSpec`s of `extract(cfg)` for an (H, W) input."""
        self.validate(cfg)
        return plan_layer_specs(self.layout(), self.plan(cfg), tuple(image_size),
                                self.num_classes if num_classes is None else num_classes)
