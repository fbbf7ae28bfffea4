"""The `Runner` interface: build an emitted C project, run it on inputs, read the outputs.

A runner knows one way of executing a project (the native host, QEMU, a board on a
serial port). It learns the model's inputs and outputs from the project's
``compile.json`` (written by `compiler.driver.compile_model`), so it needs nothing
from the compiler at run time.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


class RunnerError(RuntimeError):
    """A project failed to build or run; the message carries the tool's output."""


@dataclass(frozen=True)
class TensorSpec:
    """One model input or output as described in compile.json."""

    name: str
    shape: tuple[int, ...]
    dtype: str
    nbytes: int
    scale: float | None = None
    zero_point: int | None = None


@dataclass(frozen=True)
class RunResult:
    """Outputs of a run.

    Attributes:
        outputs: output name → array (the model's dtype and shape).
        latency_s: seconds per repetition, as measured on the device.
        protocol: what the runner reported (status, arena bytes, tool versions, ...).
    """

    outputs: dict[str, np.ndarray]
    latency_s: list[float]
    protocol: dict = field(default_factory=dict)


def read_io(project_dir: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The inputs and outputs of the project in `project_dir`, from its compile.json."""
    path = Path(project_dir) / "compile.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: {project_dir} is not a compiled project "
                                "(run `qanas compile MODEL --out DIR` first)")
    meta = json.loads(path.read_text())

    def spec(entry: dict) -> TensorSpec:
        return TensorSpec(entry["name"], tuple(entry["shape"]), entry["dtype"], entry["bytes"],
                          entry.get("scale"), entry.get("zero_point"))

    return [spec(e) for e in meta["inputs"]], [spec(e) for e in meta["outputs"]]


def check_inputs(specs: list[TensorSpec], inputs: Mapping[str, np.ndarray]) -> list[np.ndarray]:
    """`inputs` in the model's order, as contiguous arrays of the model's dtype and shape.

    Raises:
        ValueError: a missing or unexpected name, a wrong shape, or a dtype that cannot be
            converted without loss.
    """
    unknown = sorted(set(inputs) - {s.name for s in specs})
    if unknown:
        raise ValueError(f"unknown inputs {unknown}; the model takes {[s.name for s in specs]}")
    arrays = []
    for s in specs:
        if s.name not in inputs:
            raise ValueError(f"missing input {s.name!r} ({s.dtype}{list(s.shape)})")
        a = np.asarray(inputs[s.name])
        if tuple(a.shape) != s.shape:
            raise ValueError(f"input {s.name!r} has shape {list(a.shape)}, the model expects "
                             f"{list(s.shape)}")
        if a.dtype != np.dtype(s.dtype) and not np.can_cast(a.dtype, s.dtype, "same_kind"):
            raise ValueError(f"input {s.name!r} is {a.dtype}, the model expects {s.dtype}; "
                             "quantize float inputs with the input's scale and zero point")
        arrays.append(np.ascontiguousarray(a, dtype=s.dtype))
    return arrays


class Runner(abc.ABC):
    """Builds and runs emitted projects on one kind of machine."""

    name: str = "runner"

    @abc.abstractmethod
    def build(self, project_dir: Path) -> Path:
        """Builds the project; returns the executable (or firmware image)."""

    @abc.abstractmethod
    def run(self, project_dir: Path, inputs: Mapping[str, np.ndarray],
            repeats: int = 1) -> RunResult:
        """Builds if needed, runs `repeats` times on `inputs` (name → array)."""
