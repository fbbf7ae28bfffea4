"""Hardware cost of a subnet on a target: MACs, params, flash, peak SRAM and latency.

* **MACs, params**: analytic, from the space's `layer_specs` (BN folded).
* **flash**: what the compiler puts in ``const`` arrays for an int8 model: one
  byte per conv/linear weight, and per output channel an int32 bias (BN and the
  zero-point correction folded in) and the per-channel requantization
  parameters (`REQUANT_BYTES_PER_CHANNEL`: int32 multiplier and int32 shift).
* **peak SRAM**: the arena that `compiler.memory`'s planner (``"greedy"`` by
  default, the compiler's own) assigns to the subnet's activation buffers, built
  from shapes by `qanas.search.graph`: the same kernels, buffer sizes (int8, and
  the int32/int64 intermediates of resizes, LUTs and adds) and lifetimes as
  `compiler.plan`, so it equals the compiled arena. No TVM is run.
* **latency**: a `LatencyModel`. `AnalyticLatencyModel` uses the coefficients of
  `targets.latency` (a model, labelled ``analytic:<cpu>``); a per-block lookup
  table measured with the runners plugs in through the same `predict` method.

Profiles are cached per architecture string.

Example:
    >>> hw = HardwareCostModel(get_space("squeezenas-small"), get_target("host"),
    ...                        (64, 128), num_classes=4)  # doctest: +SKIP
    >>> hw.profile(cfg).sram_bytes  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Protocol, runtime_checkable

from compiler.memory import BufferLifetime, MemoryPlan, get_planner
from qanas.errors import ConfigError
from qanas.search.graph import ConvInfo, SubnetGraph, subnet_graph
from qanas.space.base import SearchSpace, SubnetConfig
from targets import Target, total_macs, total_params
from targets.latency import analytic_cycles, coefficients_for

BIAS_BYTES = 4
REQUANT_BYTES_PER_CHANNEL = 8


@dataclass(frozen=True)
class Latency:
    """A latency figure with its unit ("cycles" or "s") and source ("analytic:<cpu>", "lut", ...)."""

    value: float
    unit: str
    source: str


@runtime_checkable
class LatencyModel(Protocol):
    """Anything that predicts the latency of a subnet on one target (analytic model, LUT)."""

    def predict(self, cfg: SubnetConfig) -> Latency:
        """The latency of subnet `cfg`."""
        ...


class AnalyticLatencyModel:
    """Cycles from MACs and bytes per layer (`targets.latency`); a model, not a measurement.

    Args:
        space: the search space.
        target: the device; its `cpu` (then `isa`) selects the coefficients.
        image_size: input (H, W).
        num_classes: classifier width (the space's default when None).
    """

    def __init__(self, space: SearchSpace, target: Target, image_size: tuple[int, int],
                 num_classes: int | None = None):
        self.space, self.target = space, target
        self.image_size, self.num_classes = tuple(image_size), num_classes
        try:
            self.coeffs = coefficients_for(target.cpu, target.isa)
        except KeyError as exc:
            raise ConfigError(str(exc.args[0])) from None
        self.source = f"analytic:{self.coeffs.name}"

    def predict(self, cfg: SubnetConfig) -> Latency:
        """Modelled cycles of `cfg` on the target."""
        specs = self.space.layer_specs(cfg, self.image_size, self.num_classes)
        return Latency(analytic_cycles(specs, self.coeffs), "cycles", self.source)


@dataclass(frozen=True)
class HardwareProfile:
    """Costs of one subnet on one target.

    Attributes:
        macs, params: analytic counts.
        flash_bytes: int8 weights + int32 biases + requantization parameters.
        sram_bytes: planned activation arena (the compiler's planner).
        sram_lower_bound_bytes: largest set of simultaneously live buffers.
        latency: the latency model's prediction.
    """

    macs: int
    params: int
    flash_bytes: int
    sram_bytes: int
    sram_lower_bound_bytes: int
    latency: Latency

    def to_dict(self) -> dict:
        """JSON-friendly form."""
        return asdict(self)


def flash_bytes(convs: tuple[ConvInfo, ...]) -> int:
    """Constant bytes of an int8 model with these convs (see the module docstring)."""
    total = 0
    for c in convs:
        weights = c.kernel[0] * c.kernel[1] * (c.in_channels // c.groups) * c.out_channels
        total += weights + c.out_channels * (BIAS_BYTES + REQUANT_BYTES_PER_CHANNEL)
    return total


def plan_sram(buffers: tuple[BufferLifetime, ...] | list[BufferLifetime],
              planner: str = "greedy") -> MemoryPlan:
    """The compiler's memory plan of `buffers` (arena bytes = peak SRAM of activations)."""
    return get_planner(planner).plan(list(buffers))


class HardwareCostModel:
    """Per-target cost of subnets of one space at one image size, cached per architecture.

    Args:
        space: the search space.
        target: the device.
        image_size: input (H, W).
        num_classes: classifier width (the space's default when None).
        latency_model: a `LatencyModel`; `AnalyticLatencyModel` when None.
        planner: memory planner name (the compiler's default ``"greedy"``).
    """

    def __init__(self, space: SearchSpace, target: Target, image_size: tuple[int, int],
                 num_classes: int | None = None, latency_model: LatencyModel | None = None,
                 planner: str = "greedy"):
        self.space, self.target = space, target
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.num_classes = num_classes if num_classes is not None else getattr(space, "num_classes", 19)
        self.latency_model = latency_model or AnalyticLatencyModel(
            space, target, self.image_size, self.num_classes)
        self.planner = planner
        self._graphs: dict[str, SubnetGraph] = {}
        self._profiles: dict[str, HardwareProfile] = {}

    def graph(self, cfg: SubnetConfig) -> SubnetGraph:
        """The fused kernels and activation buffers of `cfg` (cached)."""
        key = cfg.to_str()
        if key not in self._graphs:
            self._graphs[key] = subnet_graph(self.space, cfg, self.image_size, self.num_classes)
        return self._graphs[key]

    def profile(self, cfg: SubnetConfig) -> HardwareProfile:
        """MACs, params, flash, peak SRAM and latency of `cfg` (cached)."""
        key = cfg.to_str()
        if key not in self._profiles:
            specs = self.space.layer_specs(cfg, self.image_size, self.num_classes)
            graph = self.graph(cfg)
            plan = plan_sram(graph.buffers, self.planner)
            self._profiles[key] = HardwareProfile(
                macs=total_macs(specs), params=total_params(specs),
                flash_bytes=flash_bytes(graph.convs), sram_bytes=plan.arena_bytes,
                sram_lower_bound_bytes=plan.lower_bound_bytes,
                latency=self.latency_model.predict(cfg))
        return self._profiles[key]

    def budgets(self) -> dict[str, int | None]:
        """The target's memory budgets; see `target_budgets`."""
        return target_budgets(self.target)


def target_budgets(target: Target) -> dict[str, int | None]:
    """SRAM for the arena and room for the weights, in bytes (None when unbounded).

    Weights are budgeted against the region they are linked into
    (`Target.weights_memory`: external PSRAM/DDR on the QEMU MPS machines, on-chip
    flash on boards), the same region the firmware build checks.
    """
    weights = target.weights_memory
    return {"sram_bytes": target.sram.size if target.sram else None,
            "flash_bytes": weights.size if weights else None}
