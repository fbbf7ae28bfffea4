"""Shared by the firmware and runner tests: a compiled int8 project and its host reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from qanas.bench.runners import random_inputs
from qanas.supernet import build_supernet
from runtime.runners.base import read_io
from runtime.runners.firmware_base import HostReferenceRunner

DEMO_SIZE = (64, 128)  # `qanas demo`'s image size (H, W)
DEMO_CLASSES = 6  # classes of the synthetic data set the demo trains on


def compile_int8_conv(directory: Path, target: str = "cortex-m4", seed: int = 0) -> Path:
    """A Brevitas int8 conv model (tests/support/qdq_models.py) compiled into
    `directory`/project."""
    from compiler.driver import compile_model
    from tests.support.qdq_models import brevitas_conv_model

    onnx_path = brevitas_conv_model(Path(directory), seed=seed)
    result = compile_model(onnx_path, target, Path(directory) / "project")
    assert result.quantized, "the fixture must be an integer-only int8 model"
    return result.out_dir


def export_subnet(space, which: str, path: Path, size: tuple[int, int] = DEMO_SIZE,
                  num_classes: int = DEMO_CLASSES, seed: int = 0) -> Path:
    """A subnet of `space` (a `SearchSpace` or its name) as QDQ ONNX, the way the demo makes it.

    Extracts `which` ("min", "seed", "max" or a config string, with ``@w`` weight bits or
    not: `qanas.space.bits.parse_config`) from the space's supernet, recalibrates BN on two
    random batches, quantizes with `qanas.quant` defaults (int8, and the 4-bit convs of a
    ``@w`` string at 4 bits), calibrates and exports QCDQ ONNX at ``1 x 3 x H x W``.
    """
    import torch

    from qanas.quant import QuantSpec, calibrate, export_qdq, quantize_model
    from qanas.score import recalibrate_bn
    from qanas.space import get_space
    from qanas.space.bits import arch_of, parse_config
    from qanas.train.standalone import subnet_quant_spec

    space = get_space(space) if isinstance(space, str) else space
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    cfg = parse_config(which, space)
    model = build_supernet(space, num_classes).extract(arch_of(cfg)).eval()
    batches = [(torch.randn(2, 3, *size, generator=gen), None) for _ in range(2)]
    recalibrate_bn(model, batches)
    spec = subnet_quant_spec(QuantSpec(), cfg, model, size, num_classes)
    qmodel = quantize_model(model.eval(), spec)
    calibrate(qmodel, batches)
    return Path(export_qdq(qmodel, torch.randn(1, 3, *size, generator=gen), Path(path)))


def inputs_and_reference(project: Path, seed: int = 0):
    """Seeded inputs of `project` and the outputs of its host build on them."""
    in_specs, _ = read_io(project)
    inputs = {s.name: a for s, a in zip(in_specs, random_inputs(in_specs, seed), strict=True)}
    return inputs, HostReferenceRunner().run(project, inputs).outputs


def assert_bit_exact(outputs: dict, reference: dict) -> None:
    """Same names, dtypes, shapes and bytes."""
    assert set(outputs) == set(reference)
    for name, ref in reference.items():
        assert outputs[name].dtype == ref.dtype and outputs[name].shape == ref.shape
        np.testing.assert_array_equal(outputs[name], ref)
