"""Running a compiled model: the runner of a target, seeded inputs, the memory figures.

What `qanas bench`, the latency tables (`qanas.cost.lut.measure`) and the demo's
latency check share: `make_runner` turns a runner spec (``qemu``, ``host``,
``qemu-user``, ``serial:PORT``) into a `runtime.runners` runner, `random_inputs`
makes the seeded inputs, `compile_if_model` compiles an ONNX model (or takes a
compiled project as it is) and `memory_summary` reads a project's memory figures.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np


def memory_summary(project: Path) -> dict:
    """The memory figures of a compiled project's compile.json: arena, the bound of the
    chosen schedule, the layer-wise bound without techniques, techniques, extra MACs."""
    import json

    info = json.loads((project / "compile.json").read_text())
    keys = ("arena_bytes", "lower_bound_bytes", "unfused_bound_bytes", "optimise", "output",
            "techniques", "extra_macs")
    return {k: info.get(k) for k in keys}


def random_inputs(specs, seed: int) -> list[np.ndarray]:
    """Seeded inputs: full-range integers for integer inputs, N(0, 1) for float inputs."""
    rng = np.random.default_rng(seed)
    out = []
    for s in specs:
        dtype = np.dtype(s.dtype)
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            out.append(rng.integers(info.min, info.max, size=s.shape, endpoint=True,
                                    dtype=dtype))
        else:
            out.append(rng.standard_normal(s.shape).astype(dtype))
    return out


def compile_if_model(model: str, target, out: str | None, planner: str = "greedy",
                     force: bool = False, optimise: str = "size") -> Path:
    """`model` itself when it is a compiled project, else compiles it into `out` (with
    the compiler's `optimise` mode)."""
    path = Path(model)
    if path.is_dir():
        if not (path / "compile.json").is_file():
            raise FileNotFoundError(f"{path} is not a compiled project (no compile.json)")
        return path
    if not path.is_file():
        raise FileNotFoundError(f"model {model} not found")
    if out is None:
        out = tempfile.mkdtemp(prefix="qanas-bench-")
    from compiler.driver import compile_model

    compile_model(str(path), target, out, planner=planner, force=force, optimise=optimise)
    return Path(out)


def make_runner(spec: str | None, target, warmup: int, per_layer: bool,
                flash: str | None = None, no_flash: bool = False):
    """A runner from --runner: qemu, host, qemu-user or serial:PORT (default: the target's).

    For a serial board the firmware is flashed with `flash` (a command template with
    ``{elf}``, ``{hex}`` or ``{bin}``), by default the board's documented
    `Target.flash_command`; `no_flash` runs an image the user flashed already.
    """
    from runtime.runners import get_runner

    spec = spec or target.runner
    if spec == "vela":
        raise ValueError(f"{target.name} is an NPU target: nothing runs it here. `qanas bench "
                         f"MODEL.onnx --target {target.name}` reports Vela's estimates and "
                         f"`qanas deploy --target {target.name}` writes the firmware bundle")
    if spec.startswith("serial"):
        port = spec.partition(":")[2]
        if not port:
            raise ValueError("--runner serial needs a port: serial:/dev/ttyACM0 or "
                             "serial:socket://HOST:PORT")
        command = None if no_flash else (flash or " ".join(target.flash_command) or None)
        return get_runner("serial", port=port, target=target, warmup=warmup,
                          profile_layers=per_layer, flash=command)
    if spec == "qemu":
        return get_runner("qemu", target=target, warmup=warmup, profile_layers=per_layer)
    if spec == "qemu-user":
        return get_runner("qemu-user", target=target)
    if spec == "host":
        from runtime.runners.firmware_base import HostReferenceRunner

        return HostReferenceRunner()
    return get_runner(spec)
