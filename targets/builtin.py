"""Built-in targets. Each registers itself in `TARGETS` on import."""

from __future__ import annotations

from targets.registry import Registry
from targets.target import Target, Toolchain

TARGETS: Registry[Target] = Registry("target")


def register_target(target: Target) -> Target:
    """Registers `target` under `target.name`."""
    return TARGETS.register(target.name, target)


HOST = register_target(
    Target(
        name="host",
        description="this machine (x86_64/aarch64 Linux), native gcc; latency in seconds",
        isa="native",
        cpu="native",
        toolchain=Toolchain(cc="gcc", cflags=("-O2", "-std=c99")),
        tvm_target={"kind": "c"},
        runner="host",
    )
)
