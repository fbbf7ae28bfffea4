"""Measuring the int8 latency of one model on a target, on the data it sees in context.

A `Measurer` quantizes a float module (Brevitas), exports QDQ ONNX, compiles it for the
target and runs it on the target's runner. Cortex-M instruction counts under QEMU are
deterministic but **data dependent** (the requantize/clip code branches: one
squeezenas-small block on cortex-m7 runs 23.66 M instructions on an all-zero input and
24.01 M on uniform random int8, `benchmarks/lut_data_dependence.py`), so what a block is
fed matters. `context_inputs` runs
the reference network in float on seeded images and records, for every superblock, the
activations that reach it: each block is calibrated and run on those (its context), and
every end-to-end measurement is calibrated and run on the same images.

Example:
    >>> measurer = CompiledModelMeasurer(get_target("cortex-m7"), "work")  # doctest: +SKIP
    >>> image, per_block = context_inputs(supernet, space.seed_config(), (64, 128))  # doctest: +SKIP
    >>> measurer.measure(subnet, image, "subnet").value  # doctest: +SKIP
"""

from __future__ import annotations

import statistics
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from torch import nn

from qanas.cost.lut.mode import TABLE_OPTIMISE
from qanas.errors import ConfigError
from qanas.space.base import SubnetConfig
from qanas.utils.seeding import seeded

CALIBRATION_BATCHES = 2


@dataclass(frozen=True)
class ModelInputs:
    """What a model is calibrated on (float batches) and run on (one float sample)."""

    calibration: tuple[torch.Tensor, ...]
    sample: torch.Tensor

    @property
    def shape(self) -> tuple[int, ...]:
        """Shape of the sample, i.e. the model's input shape."""
        return tuple(self.sample.shape)


@dataclass(frozen=True)
class Measurement:
    """One measured latency with its unit and what the runner reported.

    `boundary` is the part of `value` spent in layout transposes at the model's own input
    and output (NCHW to the kernel library's NHWC and back), measured per layer: a block
    measured alone has them, the same block between library blocks of a subnet does not
    (0 where the runner has no per-layer profile).
    """

    value: float
    unit: str
    protocol: dict = field(default_factory=dict)
    boundary: float = 0.0


class Measurer(Protocol):
    """Measures the int8 latency of a float model on one target (a fake one in tests)."""

    unit: str

    def measure(self, model: nn.Module, inputs: ModelInputs, name: str) -> Measurement:
        """Latency of `model` quantized and calibrated on `inputs`, run on `inputs.sample`."""
        ...

    def protocol(self) -> dict:
        """Target, runner, unit and tool versions of the measurements."""
        ...


def random_model_inputs(shape: tuple[int, ...], seed: int,
                        batches: int = CALIBRATION_BATCHES) -> ModelInputs:
    """Seeded N(0, 1) calibration batches and sample of `shape` (no context)."""
    gen = torch.Generator().manual_seed(seed)
    data = [torch.randn(*shape, generator=gen) for _ in range(batches + 1)]
    return ModelInputs(tuple(data[:batches]), data[batches])


def context_inputs(supernet, reference: SubnetConfig, image_size: tuple[int, int],
                   seed: int = 0, batches: int = CALIBRATION_BATCHES,
                   ) -> tuple[ModelInputs, dict[int, ModelInputs]]:
    """The network's inputs and, per superblock, the activations reaching it in `reference`.

    Args:
        supernet: a SqueezeNAS supernet (`choice_blocks`, `set_active`), in eval mode.
        reference: the subnet whose activations define each block's context.
        image_size: input (H, W).
        seed: seeds the images (N(0, 1), the end-to-end measurements use the same ones).
        batches: calibration batches; one more image is the run sample.

    Returns:
        `(network inputs, {superblock index: block inputs})`.
    """
    image = random_model_inputs((1, 3, *image_size), seed, batches)
    images = [*image.calibration, image.sample]
    seen: dict[int, list[torch.Tensor]] = {i: [] for i in range(len(supernet.choice_blocks))}

    def recorder(index: int):
        def hook(module, args):
            seen[index].append(args[0].detach().clone())
        return hook

    supernet.set_active(reference)
    handles = [b.register_forward_pre_hook(recorder(i))
               for i, b in enumerate(supernet.choice_blocks)]
    try:
        with torch.no_grad():
            for x in images:
                supernet.eval()(x)
    finally:
        for h in handles:
            h.remove()
    per_block = {i: ModelInputs(tuple(v[:batches]), v[batches]) for i, v in seen.items()}
    return image, per_block


def quantize_sample(sample: torch.Tensor, spec) -> np.ndarray:
    """`sample` in the compiled input's dtype: int8 with its scale and zero point, else float.

    Raises:
        ConfigError: an integer input without a scale in the compiled project.
    """
    dtype = np.dtype(spec.dtype)
    x = sample.detach().numpy().reshape(spec.shape)
    if dtype.kind == "f":
        return x.astype(dtype)
    if spec.scale is None:
        raise ConfigError(f"the compiled input {spec.name!r} is {dtype} without a scale; "
                          "recompile the model with the current compiler")
    info = np.iinfo(dtype)
    q = np.round(x / float(spec.scale)) + int(spec.zero_point or 0)
    return np.clip(q, info.min, info.max).astype(dtype)


class CompiledModelMeasurer:
    """Quantize (Brevitas) → QDQ ONNX → `compile_model` (``--optimise TABLE_OPTIMISE``) →
    the target's runner.

    Args:
        target: the `Target`.
        work_dir: where ONNX files and C projects are written (one folder per model).
        repeats: timed runs per model; the median is kept (QEMU counts are exact: 1 is enough).
        runner: runner name (default: the target's, i.e. qemu for Cortex-M, host for host).
    """

    def __init__(self, target, work_dir: str | Path, repeats: int = 1, runner: str | None = None):
        from qanas.bench.runners import make_runner

        self.target = target
        self.work_dir = Path(work_dir)
        self.repeats = int(repeats)
        per_layer = (runner or target.runner) == "qemu"  # to find the boundary transposes
        self.runner = make_runner(runner, target, warmup=0, per_layer=per_layer)
        self.unit = getattr(self.runner, "unit", "s") if self.runner.name != "host" else "s"

    def compile(self, model: nn.Module, inputs: ModelInputs, name: str):
        """`model` quantized, calibrated on `inputs`, exported and compiled into
        ``work_dir/<name>/project``; returns the `CompileResult`."""
        from compiler.driver import compile_model
        from qanas.quant import QuantSpec, calibrate, export_qdq, quantize_model

        folder = self.work_dir / safe_name(name)
        qmodel = quantize_model(model.eval(), QuantSpec())
        calibrate(qmodel, list(inputs.calibration))
        onnx_path = export_qdq(qmodel, inputs.sample, folder / "model.onnx")
        return compile_model(onnx_path, self.target, folder / "project", force=True,
                             optimise=TABLE_OPTIMISE)

    def run(self, compiled, inputs: ModelInputs, name: str):
        """The runner's `RunResult` of the compiled model on `inputs.sample`."""
        from runtime.runners.base import read_io

        specs, _ = read_io(compiled.out_dir)
        if len(specs) != 1:
            raise ConfigError(f"{name}: expected a model with one input, got {len(specs)}")
        return self.runner.run(compiled.out_dir,
                               {specs[0].name: quantize_sample(inputs.sample, specs[0])},
                               repeats=self.repeats)

    def measure(self, model: nn.Module, inputs: ModelInputs, name: str) -> Measurement:
        """See `Measurer.measure`."""
        compiled = self.compile(model, inputs, name)
        result = self.run(compiled, inputs, name)
        values = result.protocol.get("latency") if self.unit != "s" else result.latency_s
        proto = {k: result.protocol.get(k) for k in ("runner", "unit", "toolchain", "emulator",
                                                     "compiler_version")}
        return Measurement(float(statistics.median(values)), self.unit, proto,
                           boundary_transposes(compiled.plan, result.protocol.get("layers")))

    def protocol(self) -> dict:
        """See `Measurer.protocol`."""
        from qanas.quant import QuantSpec
        from qanas.utils.io import versions

        proto = {"target": self.target.name, "runner": self.runner.name, "unit": self.unit,
                 "repeats": self.repeats, "quant_spec": QuantSpec().to_dict(),
                 "optimise": TABLE_OPTIMISE,
                 "versions": versions()}
        if self.runner.name == "qemu":
            from runtime.runners.qemu import qemu_version

            proto["emulator"] = {"version": qemu_version(), "machine": self.target.emulator,
                                 "icount_shift": 0}
        proto["toolchain"] = {"cc": self.target.toolchain.cc,
                              "cflags": list(self.target.toolchain.cflags),
                              "version": tool_version(self.target.toolchain.cc)}
        return proto


def boundary_transposes(plan, layers: list[dict] | None) -> float:
    """What the per-layer profile `layers` spent in the plan's transposes that read a model
    input or write a model output (0 without a profile)."""
    if not layers:
        return 0.0
    edges = {name for name, b in plan.buffers.items() if b.kind in ("input", "output")}
    kernels = {c.kernel for c in plan.calls if c.kernel.startswith("transpose")
               and edges & {*c.inputs, *c.outputs}}
    return float(sum(layer["value"] for layer in layers if layer.get("kernel") in kernels))


def overhead_models(channels: int = 8) -> tuple[nn.Module, nn.Module]:
    """One and two identical 1x1 conv + ReLU layers: the two points of `per_model_overhead`."""
    def layer() -> list[nn.Module]:
        return [nn.Conv2d(channels, channels, 1), nn.ReLU()]

    with seeded(0):
        one = nn.Sequential(*layer())
        two = nn.Sequential(*layer(), *layer())
    two[0].load_state_dict(one[0].state_dict())
    two[2].load_state_dict(one[0].state_dict())
    return one, two


def per_model_overhead(measurer: Measurer, seed: int = 0) -> dict:
    """The constant every measured model carries (timer reads, call), by two-point difference.

    A model of one kernel costs ``c + k``, one of two identical kernels ``c + 2k``, so
    ``c = 2 (c + k) - (c + 2k)``. Every per-block entry includes ``c`` once; an identity
    skip has no entry and so no ``c``; the fixed part of a subnet carries it once.
    """
    one, two = overhead_models()
    inputs = random_model_inputs((1, 8, 1, 1), seed)
    m1 = measurer.measure(one, inputs, "overhead-1").value
    m2 = measurer.measure(two, inputs, "overhead-2").value
    return {"value": 2.0 * m1 - m2, "one_kernel": m1, "two_kernels": m2,
            "method": "2 * measured(1x1 conv) - measured(two 1x1 convs)"}


def tool_version(cc: str) -> str:
    """First line of `cc --version`, or "unknown"."""
    try:
        return subprocess.run([cc, "--version"], capture_output=True, text=True,
                              check=True).stdout.splitlines()[0]
    except (OSError, subprocess.CalledProcessError, IndexError):
        return "unknown"


def safe_name(name: str) -> str:
    """`name` with anything but letters, digits, '-' and '.' replaced by '_' (a folder name)."""
    return "".join(c if c.isalnum() or c in "-." else "_" for c in name)
