"""`cost_model_for`: the one place that chooses how a subnet's cost on a target is answered.

* **Vela** (`qanas.cost.vela.VelaCostModel`) for an Ethos-U target: latency, SRAM and
  model size are Vela's estimates, over the space pruned of the choices Vela leaves on
  the CPU (`qanas.space.npu_pruning`).
* Otherwise `qanas.cost.hardware.HardwareCostModel`: MACs, params and flash analytic,
  peak SRAM the compiler's plan-only arena (`qanas.cost.sram.CompiledSramModel`),
  and latency from
  * the **measured per-block table** (`qanas.cost.lut`) given as `lut`, else the one
    committed for exactly this space, target, input size and class count;
  * else the target's **analytic** cycle model (`AnalyticLatencyModel`).

  Both describe one compiler mode, `optimise` (``qanas compile --optimise``), the one the
  chosen subnets are deployed with: the SRAM is planned in it, and a latency table is used
  only if it measured that mode (tables measure ``speed`` builds: a ``size`` search
  predicts latency analytically, with a warning naming the table it leaves out).

Example:
    >>> choice = cost_model_for(get_target("cortex-m7"), get_space("squeezenas-small"),
    ...                         (64, 128), 6)  # doctest: +SKIP
    >>> choice.model.profile(cfg).latency.source  # doctest: +SKIP
    'lut:cortex-m7'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from qanas.cost.hardware import CostModel, HardwareCostModel, LatencyModel
from qanas.errors import ConfigError
from qanas.space.base import SearchSpace
from targets import Target


@dataclass
class CostModelChoice:
    """The cost model chosen for a (target, space, size, classes), and what it rests on.

    Attributes:
        model: the cost model (`HardwareCostModel` or `VelaCostModel`).
        space: the space to search with it (NPU-pruned for an Ethos-U target).
        latency_table: the measured latency table the model predicts with, if any.
        npu: the Ethos-U setup (pruning record, Vela settings), None for other targets.
    """

    model: CostModel
    space: SearchSpace
    latency_table: Path | None = None
    npu: object | None = None

    def metric_settings(self) -> dict:
        """What archived costs depend on beyond the scorer's settings (part of the metric set):
        Vela's settings, or the latency table's sha256 and the SRAM model's settings (the
        compiler's optimise mode, output form, planner and kernel generation)."""
        if self.npu is not None:
            return self.npu.metric_settings()
        settings = {}
        if self.latency_table is not None:
            from qanas.utils.io import file_sha256

            settings["latency_lut"] = file_sha256(self.latency_table)
        sram = getattr(self.model, "sram", None)
        if callable(getattr(sram, "settings", None)):
            settings["sram"] = sram.settings()
        return settings


def latency_model_for(space: SearchSpace, target: Target, image_size: tuple[int, int],
                      num_classes: int, lut: str | Path | None = None,
                      no_lut: bool = False, optimise: str = "size",
                      ) -> tuple[LatencyModel | None, Path | None]:
    """The measured-table latency model where one applies, else (None, None) (analytic).

    `lut` is used when given (checked to match, `optimise` included); otherwise the
    committed table of exactly this setting and mode, unless `no_lut` or the target is
    an NPU (Vela estimates).
    """
    if lut or (target.npu_config is None and not no_lut):
        from qanas.cost.lut.committed import latency_lut_model

        return latency_lut_model(space, target.name, image_size, num_classes, lut, optimise)
    return None, None


def cost_model_for(target: Target, space: SearchSpace, image_size: tuple[int, int],
                   num_classes: int, *, lut: str | Path | None = None, no_lut: bool = False,
                   run_dir: str | Path = ".", seed: int = 0, optimise: str = "size",
                   log: Callable[[str], None] | None = None) -> CostModelChoice:
    """Chooses and builds the cost model of subnets of `space` on `target` (module docstring).

    Args:
        target, space, image_size, num_classes: what is costed.
        lut: a measured latency table (`qanas lut build`) to use instead of the default.
        no_lut: the analytic latency model even where a table is committed.
        run_dir: an Ethos-U search's folder (Vela's files, the cached pruning).
        seed: seeds the weights of the subnets exported for the SRAM plan or Vela.
        optimise: the compiler mode the subnets are deployed with (``size`` or ``speed``).
        log: progress lines of the NPU pruning.

    Raises:
        ConfigError: `lut` for an NPU target (its latency is Vela's), or a table that
            does not match the setting.
    """
    latency, table = latency_model_for(space, target, image_size, num_classes, lut, no_lut,
                                       optimise)
    if target.npu_config is None:
        model = HardwareCostModel(space, target, image_size, num_classes, latency_model=latency,
                                  optimise=optimise)
        return CostModelChoice(model, space, table)
    if latency is not None:
        raise ConfigError(f"--lut does not apply to {target.name}: its latency is "
                          "Vela's estimate; drop --lut")
    from qanas.cost.vela import setup_npu_search

    npu = setup_npu_search(space, target, image_size, num_classes, run_dir, seed=seed, log=log)
    return CostModelChoice(npu.hw, npu.space, None, npu)
