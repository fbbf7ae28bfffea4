"""Peak SRAM of a subnet: the arena the compiler plans for it, from its plan-only mode.

Each subnet is exported as the int8 QDQ ONNX the deploy flow compiles
(`qanas.search.subnet_export`: seeded weights, Brevitas calibration) and planned by
`compiler.plan_only.plan_model_memory` for the target, with the same `optimise` mode
and memory planner as `qanas compile`: the figure is the compiled arena byte for byte.
No C is generated, and kernels met in an earlier subnet are not lowered again
(`compiler.workspace.ScratchCache`). Reports are cached per architecture (the search archive stores the
profile, so a resumed search never plans a subnet twice).

Example:
    >>> sram = CompiledSramModel(get_space("squeezenas-small"), get_target("cortex-m7"),
    ...                          (64, 128), 6)  # doctest: +SKIP
    >>> sram.report(cfg).arena_bytes  # doctest: +SKIP
"""

from __future__ import annotations

import tempfile

from compiler.pipeline import CompileOptions
from compiler.plan_only import MemoryReport, plan_model_memory
from compiler.workspace import ScratchCache
from qanas.search.subnet_export import SubnetExporter
from qanas.space.base import SearchSpace, SubnetConfig
from targets import Target


class CompiledSramModel:
    """Plan-only memory reports of subnets of one space at one image size on one target.

    Args:
        space: the search space.
        target: a C target (the compiler plans for it).
        image_size: input (H, W).
        num_classes: classifier width.
        optimise: the compiler's ``--optimise`` mode (``size`` or ``speed``).
        planner: the memory planner (the compiler's default ``greedy``).
        seed: seeds the exported subnets' weights and calibration batches.
        exporter: a `SubnetExporter` to share (its supernet is built once).
        measure_unfused: also measure each subnet's layer-wise bound without techniques
            (a second fusion per subnet; the search needs only the arena).
    """

    def __init__(self, space: SearchSpace, target: Target, image_size: tuple[int, int],
                 num_classes: int, optimise: str = "size", planner: str = "greedy",
                 seed: int = 0, exporter: SubnetExporter | None = None,
                 measure_unfused: bool = False):
        self.space, self.target = space, target
        self.options = CompileOptions(planner=planner, optimise=optimise)
        self.measure_unfused = measure_unfused
        self.exporter = exporter or SubnetExporter(space, image_size, num_classes, seed)
        self.scratch_cache = ScratchCache()
        self._reports: dict[str, MemoryReport] = {}

    def settings(self) -> dict:
        """What the figures depend on (for an archive's metric-set key)."""
        return {"sram_model": "compiler-plan-only", "optimise": self.options.optimise,
                "planner": self.options.planner, "weights_seed": self.exporter.seed}

    def report(self, cfg: SubnetConfig) -> MemoryReport:
        """The compiler's `MemoryReport` of `cfg` (cached per architecture)."""
        key = cfg.to_str()
        if key not in self._reports:
            with tempfile.TemporaryDirectory(prefix="qanas-sram-") as tmp:
                onnx_path = self.exporter.export_onnx(cfg, tmp)
                self._reports[key] = plan_model_memory(
                    onnx_path, self.target, self.options, self.scratch_cache,
                    measure_unfused=self.measure_unfused)
        return self._reports[key]
