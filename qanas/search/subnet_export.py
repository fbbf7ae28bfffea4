"""Subnets as deployable int8 files: seeded weights, Brevitas calibration, QDQ ONNX (+ TFLite).

Cost models that need what the compilers make of a subnet (the plan-only arena of
`compiler.plan_only`, Vela's estimates) build it here. Weights are seeded random, not a
trained supernet's: memory plans, cycles and operator placement depend on shapes and
operator types, not on weight values.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from qanas.space.base import SearchSpace, SubnetConfig


@dataclass(frozen=True)
class SubnetExport:
    """Where one subnet's QDQ ONNX and int8 TFLite were written."""

    onnx: Path
    tflite: Path


class SubnetExporter:
    """Builds and exports subnets of one space at one image size (one seeded supernet).

    Args:
        space: the search space.
        image_size: input (H, W).
        num_classes: classifier width.
        seed: seeds the supernet weights and the calibration batches.
    """

    def __init__(self, space: SearchSpace, image_size: tuple[int, int], num_classes: int,
                 seed: int = 0):
        self.space, self.image_size = space, (int(image_size[0]), int(image_size[1]))
        self.num_classes, self.seed = int(num_classes), int(seed)
        self._supernet = None

    def export_onnx(self, cfg: SubnetConfig, folder: str | Path) -> Path:
        """Quantizes `cfg` and exports its QDQ ONNX to ``folder/model.onnx``."""
        import torch

        from qanas.quant import QuantSpec, calibrate, export_qdq, quantize_model

        folder = Path(folder)
        if self._supernet is None:
            torch.manual_seed(self.seed)
            self._supernet = self.space.build_supernet(self.num_classes).eval()
        gen = torch.Generator().manual_seed(self.seed)
        shape = (1, 3, *self.image_size)
        model = self._supernet.extract(cfg).eval()
        qmodel = quantize_model(model, QuantSpec())
        calibrate(qmodel, [torch.randn(*shape, generator=gen) for _ in range(2)])
        return export_qdq(qmodel, torch.randn(*shape, generator=gen), folder / "model.onnx")

    def export(self, cfg: SubnetConfig, folder: str | Path) -> SubnetExport:
        """Quantizes and exports `cfg` into `folder` (``model.onnx``, ``model.tflite``)."""
        from compiler.tflite import export_tflite

        onnx_path = self.export_onnx(cfg, folder)
        tflite = Path(export_tflite(str(onnx_path), Path(folder) / "model.tflite").path)
        return SubnetExport(onnx_path, tflite)
