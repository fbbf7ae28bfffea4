"""Hardware cost of a subnet on a target: MACs, params, flash, peak SRAM and latency.

* **MACs, params**: analytic, from the space's `layer_specs` (BN folded).
* **flash**: what the compiler puts in ``const`` arrays for an int8 model: one
  byte per conv/linear weight, and per output channel an int32 bias (BN and the
  zero-point correction folded in) and the per-channel requantization
  parameters (`REQUANT_BYTES_PER_CHANNEL`: int32 multiplier and int32 shift), from
  the same `layer_specs`.
* **peak SRAM**: the arena the compiler plans for the subnet's int8 QDQ export, from
  its plan-only mode (`qanas.cost.sram.CompiledSramModel`, wrapped here,
  `compiler.plan_only.plan_model_memory`): the compiled arena byte for byte, with the
  memory techniques of the chosen ``optimise`` mode.
* **latency**: a `LatencyModel`. `AnalyticLatencyModel` uses the coefficients of
  `targets.latency` fitted on builds of the same ``optimise`` mode (a model, labelled
  ``analytic:<cpu>``); a per-block lookup table measured with the runners plugs in
  through the same `predict` method.

Profiles are cached per architecture string.

Example:
    >>> hw = HardwareCostModel(get_space("squeezenas-small"), get_target("host"),
    ...                        (64, 128), num_classes=4)  # doctest: +SKIP
    >>> hw.profile(cfg).sram_bytes  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Protocol, runtime_checkable

from compiler.plan_only import MemoryReport
from qanas.errors import ConfigError
from qanas.space.base import SearchSpace, SubnetConfig
from targets import LayerSpec, Target, total_macs, total_params
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
        optimise: the compiler mode the subnets are deployed with; it selects the
            coefficients fitted on builds of that mode (`targets.latency.coefficients_for`).

    Raises:
        ConfigError: no coefficients for the target's CPU, or an unknown `optimise`.
    """

    def __init__(self, space: SearchSpace, target: Target, image_size: tuple[int, int],
                 num_classes: int | None = None, optimise: str = "size"):
        self.space, self.target = space, target
        self.image_size, self.num_classes = tuple(image_size), num_classes
        try:
            self.coeffs = coefficients_for(target.cpu, target.isa, optimise)
        except (KeyError, ValueError) as exc:
            raise ConfigError(str(exc.args[0])) from None
        self.source = f"analytic:{self.coeffs.name}"

    def predict(self, cfg: SubnetConfig) -> Latency:
        """Modelled cycles of `cfg` on the target."""
        specs = self.space.layer_specs(cfg, self.image_size, self.num_classes)
        return Latency(analytic_cycles(specs, self.coeffs), "cycles", self.source)


@runtime_checkable
class SramModel(Protocol):
    """Anything that gives the compiler's memory report of a subnet (`CompiledSramModel`)."""

    def report(self, cfg: SubnetConfig) -> MemoryReport:
        """The `MemoryReport` of subnet `cfg`."""
        ...


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


@runtime_checkable
class CostModel(Protocol):
    """What a search asks of a target about a subnet: its costs, and the target's budgets.

    `HardwareCostModel` (CPU targets) and `qanas.cost.vela.VelaCostModel` (Ethos-U) are
    the two; `qanas.cost.cost_model_for` chooses between them.
    """

    target: Target

    def profile(self, cfg: SubnetConfig) -> HardwareProfile:
        """MACs, params, flash, peak SRAM and latency of `cfg`."""
        ...

    def budgets(self) -> dict[str, int | None]:
        """The target's memory budgets in bytes (None when unbounded)."""
        ...


def flash_bytes(specs: list[LayerSpec]) -> int:
    """Constant bytes of an int8 model with these layers (see the module docstring)."""
    total = 0
    for c in specs:
        if c.op not in ("conv", "linear"):
            continue
        weights = c.kernel[0] * c.kernel[1] * (c.in_channels // c.groups) * c.out_channels
        total += weights + c.out_channels * (BIAS_BYTES + REQUANT_BYTES_PER_CHANNEL)
    return total


class HardwareCostModel:
    """Per-target cost of subnets of one space at one image size, cached per architecture.

    Args:
        space: the search space.
        target: the device.
        image_size: input (H, W).
        num_classes: classifier width (the space's default when None).
        latency_model: a `LatencyModel`; `AnalyticLatencyModel` when None.
        planner: memory planner name (the compiler's default ``"greedy"``).
        optimise: the compiler's ``--optimise`` mode the SRAM is planned with and the
            analytic latency is fitted on.
        seed: seeds the weights and calibration of the subnets exported for the SRAM plan.
        sram_model: a `SramModel`; a `CompiledSramModel` (the compiler's plan-only arena
            with `planner`, `optimise` and `seed`) when None.
    """

    def __init__(self, space: SearchSpace, target: Target, image_size: tuple[int, int],
                 num_classes: int | None = None, latency_model: LatencyModel | None = None,
                 planner: str = "greedy", optimise: str = "size", seed: int = 0,
                 sram_model: SramModel | None = None):
        self.space, self.target = space, target
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.num_classes = num_classes if num_classes is not None else getattr(space, "num_classes", 19)
        self.optimise = optimise
        self.latency_model = latency_model or AnalyticLatencyModel(
            space, target, self.image_size, self.num_classes, optimise)
        self.planner = planner
        if sram_model is None:
            from qanas.cost.sram import CompiledSramModel  # imports the exporter, torch

            sram_model = CompiledSramModel(space, target, self.image_size, self.num_classes,
                                           optimise=optimise, planner=planner, seed=seed)
        self.sram = sram_model
        self._profiles: dict[str, HardwareProfile] = {}

    def memory(self, cfg: SubnetConfig) -> MemoryReport:
        """The compiler's plan-only `MemoryReport` of `cfg` (cached)."""
        return self.sram.report(cfg)

    def profile(self, cfg: SubnetConfig) -> HardwareProfile:
        """MACs, params, flash, peak SRAM and latency of `cfg` (cached)."""
        key = cfg.to_str()
        if key not in self._profiles:
            specs = self.space.layer_specs(cfg, self.image_size, self.num_classes)
            memory = self.memory(cfg)
            self._profiles[key] = HardwareProfile(
                macs=total_macs(specs), params=total_params(specs),
                flash_bytes=flash_bytes(specs), sram_bytes=memory.arena_bytes,
                sram_lower_bound_bytes=memory.lower_bound_bytes,
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
