"""Peak SRAM of a subnet: the arena the compiler plans for it, from its plan-only mode.

Each subnet is built as the int8 QDQ ONNX the deploy flow compiles
(`qanas.cost.subnet_export`: seeded weights, Brevitas calibration; the graph written in
memory, `SubnetExporter.qdq_model`, equal to Brevitas's export) and planned by
`compiler.plan_only.plan_model_memory` for the target, with the same `optimise` mode
and memory planner as `qanas compile`: the figure is the compiled arena byte for byte.
No C is generated, and kernels met in an earlier subnet, in this process or in an
earlier one, are not lowered again (`compiler.scratch_store.PersistentScratchCache`,
keyed by the compiler's version: its file is under `default_cache_dir`). Reports are
cached per architecture, and shared by every model of this process planning the same
subnets the same way (same space, size, classes, seed, target and options: a search
run after another, the algorithms of one benchmark); the search archive stores the
profile, so a resumed search never plans a subnet twice either.

Example:
    >>> sram = CompiledSramModel(get_space("squeezenas-small"), get_target("cortex-m7"),
    ...                          (64, 128), 6)  # doctest: +SKIP
    >>> sram.report(cfg).arena_bytes  # doctest: +SKIP
"""

from __future__ import annotations

from collections import OrderedDict

from compiler.pipeline import CompileOptions
from compiler.plan_only import MemoryReport, plan_model_memory
from compiler.scratch_store import PersistentScratchCache
from compiler.version import KERNEL_GENERATION
from compiler.workspace import ScratchCache
from qanas.cost.subnet_export import SubnetExporter
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
        output: the compiler's ``--output`` form (``logits`` or ``argmax``).
        scratch_cache: kernels' scratch shared across subnets; a
            `PersistentScratchCache` in `compiler.scratch_store.default_cache_dir` when
            None (pass a plain `ScratchCache` to keep nothing on disk).
        share_reports: serve and keep reports in the process-wide cache of models
            planning alike (False: plan every subnet anew, as a timing benchmark must).
    """

    SHARED_REPORTS_MAX = 4096
    _shared_reports: OrderedDict[tuple, MemoryReport] = OrderedDict()

    def __init__(self, space: SearchSpace, target: Target, image_size: tuple[int, int],
                 num_classes: int, optimise: str = "size", planner: str = "greedy",
                 seed: int = 0, exporter: SubnetExporter | None = None,
                 measure_unfused: bool = False, output: str = "logits",
                 scratch_cache: ScratchCache | None = None, share_reports: bool = True):
        self.space, self.target = space, target
        self.options = CompileOptions(planner=planner, optimise=optimise, output=output)
        self.measure_unfused = measure_unfused
        self.exporter = exporter or SubnetExporter(space, image_size, num_classes, seed)
        self.scratch_cache = scratch_cache if scratch_cache is not None else PersistentScratchCache()
        self._reports: dict[str, MemoryReport] = {}
        self._shared_key = None
        if share_reports:
            self._shared_key = (type(self.exporter).__qualname__, space.name,
                                self.exporter.image_size, self.exporter.num_classes,
                                target.name, self.options, measure_unfused,
                                tuple(sorted(self.settings().items())))

    def settings(self) -> dict:
        """What the figures depend on (for an archive's metric-set key): the options, the
        seed of the exported weights and the compiler's generation
        (`compiler.version.KERNEL_GENERATION`, bumped when lowering or kernels change)."""
        return {"sram_model": "compiler-plan-only", "optimise": self.options.optimise,
                "output": self.options.output, "planner": self.options.planner,
                "weights_seed": self.exporter.seed, "kernel_generation": KERNEL_GENERATION}

    def report(self, cfg: SubnetConfig) -> MemoryReport:
        """The compiler's `MemoryReport` of `cfg` (cached per architecture)."""
        key = cfg.to_str()
        if key in self._reports:
            return self._reports[key]
        shared = self._shared_reports
        shared_key = None if self._shared_key is None else (*self._shared_key, key)
        if shared_key in shared:
            shared.move_to_end(shared_key)
            report = shared[shared_key]
        else:
            report = plan_model_memory(
                self.exporter.qdq_model(cfg), self.target, self.options, self.scratch_cache,
                measure_unfused=self.measure_unfused)
            if shared_key is not None:
                shared[shared_key] = report
                while len(shared) > self.SHARED_REPORTS_MAX:
                    shared.popitem(last=False)
        self._reports[key] = report
        return report
