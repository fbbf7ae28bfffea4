"""Search for an Ethos-U target: Vela's estimates as the cost model, an NPU-aware space.

* `VelaCostModel` is the `HardwareCostModel` of an NPU target: each subnet is built
  (seeded supernet weights, Brevitas int8 calibration on seeded random batches), exported
  to QDQ ONNX and int8 TFLite, and compiled by Vela. Latency is Vela's total cycles
  (labelled ``estimate:vela-<version>``; seconds = cycles / the NPU clock), SRAM is Vela's
  SRAM use and flash the optimised model's size. `SubnetEvaluation` stores these per
  subnet in the archive, so a resumed search never runs Vela twice for a subnet.
* `prune_for_npu` (``qanas.space.npu_pruning``) removes, before the search, the choices
  that make Vela leave operators on the CPU.

Weights are seeded random, not the trained supernet's: Vela's cycles and memory depend
on shapes and operator types; weight values only change how well the weights compress.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

from qanas.cost.hardware import HardwareProfile, Latency, target_budgets
from qanas.cost.subnet_export import SubnetExporter
from qanas.errors import ConfigError
from qanas.space.base import SearchSpace, SubnetConfig
from qanas.space.npu_pruning import Probe, ProbeResult, cached_pruning
from targets import Target, total_macs, total_params


def arch_folder(cfg: SubnetConfig) -> str:
    """A short, stable folder name for a subnet (architecture strings can be long)."""
    return hashlib.sha256(cfg.to_str().encode()).hexdigest()[:16]


class VelaCostModel:
    """`HardwareCostModel` for an Ethos-U target, from Vela's estimates (see module doc).

    Args:
        space: the search space.
        target: an NPU target (``target.npu_config`` set).
        image_size: input (H, W).
        num_classes: classifier width (the space's default when None).
        work_dir: where per-subnet exports and Vela's files go (``<work_dir>/<hash>/``).
        optimise: Vela's strategy, ``"Performance"`` or ``"Size"``.
        seed: seeds the weights and calibration of the exported subnets.
        keep_models: keep each subnet's ONNX/TFLite (Vela's CSVs and log are always kept).
        exporter: a `SubnetExporter` to share (its supernet is built once); a new one
            for `space`, `image_size`, `num_classes` and `seed` when None.
    """

    def __init__(self, space: SearchSpace, target: Target, image_size: tuple[int, int],
                 num_classes: int | None = None, work_dir: str | Path = "npu",
                 optimise: str = "Performance", seed: int = 0, keep_models: bool = False,
                 exporter: SubnetExporter | None = None):
        from compiler.npu import npu_config_of, vela_version

        self.config = npu_config_of(target)
        self.space, self.target = space, target
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.num_classes = num_classes if num_classes is not None else getattr(
            space, "num_classes", 19)
        self.work_dir, self.optimise, self.seed = Path(work_dir), optimise, int(seed)
        self.keep_models = keep_models
        self.exporter = exporter or SubnetExporter(space, self.image_size, self.num_classes,
                                                   seed)
        self.source = f"estimate:vela-{vela_version()}"
        self._reports: dict = {}

    def settings(self) -> dict:
        """What the estimates depend on (part of the archive's metric set)."""
        return {"latency_model": self.source, **self.config.to_dict(),
                "optimise": self.optimise, "weights_seed": self.seed}

    def estimate(self, cfg: SubnetConfig):
        """Vela's `VelaReport` of `cfg` (cached in memory per architecture)."""
        from compiler.npu import run_vela

        key = cfg.to_str()
        if key not in self._reports:
            folder = self.work_dir / arch_folder(cfg)
            exported = self.exporter.export(cfg, folder)
            result = run_vela(exported.tflite, self.target, folder / "vela", self.optimise)
            (folder / "arch.txt").write_text(key + "\n")
            if not self.keep_models:
                for path in (exported.onnx, exported.tflite, result.optimized_tflite):
                    path.unlink(missing_ok=True)
                shutil.rmtree(folder / "model.onnx.data", ignore_errors=True)
            self._reports[key] = result.report
        return self._reports[key]

    def latency_s(self, cfg: SubnetConfig) -> float:
        """Vela's estimated inference time in seconds (total cycles / NPU clock)."""
        return self.estimate(cfg).latency_s

    def profile(self, cfg: SubnetConfig) -> HardwareProfile:
        """MACs and params (analytic), Vela's SRAM, model size and cycles of `cfg`."""
        report = self.estimate(cfg)
        specs = self.space.layer_specs(cfg, self.image_size, self.num_classes)
        return HardwareProfile(
            macs=total_macs(specs), params=total_params(specs),
            flash_bytes=report.model_bytes, sram_bytes=report.sram_bytes,
            sram_lower_bound_bytes=report.sram_bytes,
            latency=Latency(float(report.total_cycles), "cycles", self.source))

    def budgets(self) -> dict[str, int | None]:
        """The target's memory budgets (on-chip SRAM; the model's memory)."""
        return target_budgets(self.target)


def vela_probe(cost_model) -> Probe:
    """A `Probe` that uses a `VelaCostModel` (export + Vela)."""
    from compiler.errors import CompilerError
    from qanas.quant.errors import QuantizationError

    def run(cfg: SubnetConfig) -> ProbeResult:
        try:
            report = cost_model.estimate(cfg)
        except (CompilerError, QuantizationError) as exc:
            return ProbeResult(error=f"{type(exc).__name__}: {exc}"[:500])
        return ProbeResult(tuple((c.op, c.tensor, c.reason) for c in report.cpu_fallback))

    return run


def require_npu_target(target: Target) -> None:
    """Raises `ConfigError` unless `target` is an Ethos-U target."""
    if target.npu_config is None:
        raise ConfigError(f"{target.name} is not an NPU target; use ethos-u55-128, "
                          "ethos-u55-256 or ethos-u65-256")


@dataclass
class NpuSearchSetup:
    """What `qanas search --target ethos-u…` uses: the pruned space, the Vela cost model."""

    space: SearchSpace
    hw: VelaCostModel
    pruning: object

    def metric_settings(self) -> dict:
        """Settings that make archived Vela figures comparable (for the metric-set key)."""
        return {"npu": self.hw.settings()}

    def summary(self) -> dict:
        """The pruning record for the search's JSON output."""
        return {**self.pruning.to_dict(), "cardinality": str(self.space.cardinality)}


def setup_npu_search(space: SearchSpace, target: Target, image_size: tuple[int, int],
                     num_classes: int, run_dir: str | Path, optimise: str = "Performance",
                     seed: int = 0, log=None) -> NpuSearchSetup:
    """Vela cost model and NPU-pruned space for a search in `run_dir` (pruning is cached).

    Example:
        >>> npu = setup_npu_search(get_space("squeezenas-small"), get_target("ethos-u55-128"),
        ...                        (64, 128), 4, "runs/s")  # doctest: +SKIP
        >>> npu.pruning.removed  # doctest: +SKIP
    """
    from compiler.npu import vela_version

    require_npu_target(target)
    run_dir = Path(run_dir)
    hw = VelaCostModel(space, target, image_size, num_classes, run_dir / "npu" / "subnets",
                       optimise, seed)
    probe_model = VelaCostModel(space, target, image_size, num_classes,
                                run_dir / "npu" / "probes", optimise, seed,
                                exporter=hw.exporter)
    key = {"space": space.name, "target": target.name, "image_size": list(hw.image_size),
           "num_classes": hw.num_classes, "vela_version": vela_version(),
           **target.npu_config.to_dict(), "optimise": optimise, "seed": seed}
    pruning = cached_pruning(run_dir, space, vela_probe(probe_model), key, log)
    return NpuSearchSetup(pruning.restrict(space), hw, pruning)
