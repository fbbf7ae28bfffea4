"""Subnets as deployable int8 files: seeded weights, Brevitas calibration, QDQ ONNX (+ TFLite).

Cost models that need what the compilers make of a subnet (the plan-only arena of
`compiler.plan_only`, Vela's estimates) build it here. Weights are seeded random, not a
trained supernet's: memory plans, cycles and operator placement depend on shapes and
operator types, not on weight values.

Two ways out, from the same quantized and calibrated model:

* `SubnetExporter.export_onnx` writes the file `qanas deploy` would compile, through
  Brevitas's exporter (`qanas.quant.export_qdq`);
* `SubnetExporter.qdq_model` builds the same graph in memory (`qanas.cost.subnet_qdq`)
  from the lean quantized model of `qanas.quant.quantize_fast` (same quantizers, same
  calibrated scales, no Brevitas module), far faster; the search plans its SRAM from it.
  A subnet outside its scope falls back to the Brevitas model, then to the exporter.

Torch runs on one thread inside both (`torch_threads`): the work is many small tensor
operations, which a shared thread pool slows down instead of speeding up.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

from qanas.space.base import SearchSpace, SubnetConfig


@dataclass(frozen=True)
class SubnetExport:
    """Where one subnet's QDQ ONNX and int8 TFLite were written."""

    onnx: Path
    tflite: Path


@contextlib.contextmanager
def torch_threads(count: int):
    """Runs the block with torch's intra-op thread count set to `count`, then restores it."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class SubnetExporter:
    """Builds and exports subnets of one space at one image size (one seeded supernet).

    Args:
        space: the search space.
        image_size: input (H, W).
        num_classes: classifier width.
        seed: seeds the supernet weights and the calibration batches.

    Attributes:
        fallbacks: subnets `qdq_model` could not write from the lean model, by
            architecture string, with the reasons.
    """

    def __init__(self, space: SearchSpace, image_size: tuple[int, int], num_classes: int,
                 seed: int = 0):
        self.space, self.image_size = space, (int(image_size[0]), int(image_size[1]))
        self.num_classes, self.seed = int(num_classes), int(seed)
        self._supernet = None
        self.fallbacks: dict[str, str] = {}

    @property
    def input_shape(self) -> tuple[int, int, int, int]:
        """The NCHW shape of a subnet's input."""
        return (1, 3, *self.image_size)

    def _supernet_built(self) -> None:
        """Builds the seeded supernet once (the caller's global RNG left as it was)."""
        from qanas.supernet import build_supernet
        from qanas.utils.seeding import seeded

        if self._supernet is None:
            with seeded(self.seed):
                self._supernet = build_supernet(self.space, self.num_classes).eval()

    def _calibrated(self, cfg: SubnetConfig):
        """The quantized, calibrated subnet and the seeded generator, ready for its example."""
        import torch

        from qanas.quant import QuantSpec, calibrate, quantize_model

        self._supernet_built()
        gen = torch.Generator().manual_seed(self.seed)
        model = self._supernet.extract(cfg).eval()
        qmodel = quantize_model(model, QuantSpec())
        calibrate(qmodel, [torch.randn(*self.input_shape, generator=gen) for _ in range(2)])
        return qmodel, gen

    def export_onnx(self, cfg: SubnetConfig, folder: str | Path) -> Path:
        """Quantizes `cfg` and exports its QDQ ONNX to ``folder/model.onnx`` (Brevitas)."""
        import torch

        from qanas.quant import export_qdq

        with torch_threads(1):
            qmodel, gen = self._calibrated(cfg)
            example = torch.randn(*self.input_shape, generator=gen)
            return export_qdq(qmodel, example, Path(folder) / "model.onnx")

    def _lean_graph(self, cfg: SubnetConfig):
        """`cfg`'s graph from the lean quantized model (`qanas.quant.quantize_fast`),
        calibrated on the batches `_calibrated` uses."""
        import torch

        from qanas.cost.subnet_qdq import qcdq_from_lean
        from qanas.quant import QuantSpec
        from qanas.quant.quant_model import quantize_fast

        self._supernet_built()
        gen = torch.Generator().manual_seed(self.seed)
        # quantize_fast folds copies of the weights and leaves the subnet (and its train
        # or eval mode: the seeded supernet is in eval) alone, so it can read the
        # supernet's own modules
        lean = quantize_fast(self._supernet.extract_shared(cfg), QuantSpec())
        lean.calibrate([torch.randn(*self.input_shape, generator=gen) for _ in range(2)])
        return qcdq_from_lean(lean, self.input_shape)

    def qdq_model(self, cfg: SubnetConfig):
        """The QDQ `onnx.ModelProto` of `cfg`, equal to `export_onnx`'s, built in memory.

        Written from the lean quantized model (no Brevitas at all); a subnet outside its
        scope from the Brevitas model without its exporter; one outside that too from
        `export_onnx` (each fallback recorded in `fallbacks`).
        """
        import tempfile

        import onnx

        from qanas.cost.subnet_qdq import UnsupportedGraph, qcdq_from_graph
        from qanas.quant.quant_graph import UnsupportedGraph as LeanUnsupported

        with torch_threads(1):
            try:
                return self._lean_graph(cfg)
            except (LeanUnsupported, UnsupportedGraph) as exc:
                self.fallbacks[cfg.to_str()] = f"lean: {exc}"
            qmodel, _ = self._calibrated(cfg)
            try:
                return qcdq_from_graph(qmodel, self.input_shape)
            except UnsupportedGraph as exc:
                self.fallbacks[cfg.to_str()] += f"; brevitas graph: {exc}"
        with tempfile.TemporaryDirectory(prefix="qanas-qdq-") as tmp:
            return onnx.load(str(self.export_onnx(cfg, tmp)))

    def export(self, cfg: SubnetConfig, folder: str | Path) -> SubnetExport:
        """Quantizes and exports `cfg` into `folder` (``model.onnx``, ``model.tflite``)."""
        from compiler.tflite import export_tflite

        onnx_path = self.export_onnx(cfg, folder)
        tflite = Path(export_tflite(str(onnx_path), Path(folder) / "model.tflite").path)
        return SubnetExport(onnx_path, tflite)
