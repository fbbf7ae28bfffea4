"""The `Target` dataclass: everything qanas knows about one device, as plain data.

Board variants are made with `dataclasses.replace` from a base target, so a
new board is a few lines in `targets/boards.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class MemoryRegion:
    """A named memory region with its base address and size in bytes."""

    name: str
    origin: int
    size: int


@dataclass(frozen=True)
class Toolchain:
    """C compiler and flags used to build emitted code for a target."""

    cc: str = "gcc"
    cflags: tuple[str, ...] = ("-O2",)
    ldflags: tuple[str, ...] = ()
    objcopy: str | None = None
    size: str = "size"


@dataclass(frozen=True)
class NpuConfig:
    """How Vela compiles for an attached Arm Ethos-U NPU (names as in Vela's `vela.ini`).

    Attributes:
        accelerator: Vela's ``--accelerator-config``, e.g. "ethos-u55-128".
        system_config: a ``[System_Config.*]`` section, e.g. "Ethos_U55_High_End_Embedded".
        memory_mode: a ``[Memory_Mode.*]`` section, e.g. "Shared_Sram".
        clock_hz: the NPU clock of that system config (its ``core_clock``).
        config_file: the Vela configuration file that defines both sections.
    """

    accelerator: str
    system_config: str
    memory_mode: str
    clock_hz: int
    config_file: str = "Arm/vela.ini"

    def to_dict(self) -> dict:
        """JSON-friendly form."""
        return {"accelerator": self.accelerator, "system_config": self.system_config,
                "memory_mode": self.memory_mode, "clock_hz": self.clock_hz,
                "config_file": self.config_file}


@dataclass(frozen=True)
class Target:
    """A compilation and deployment target.

    Attributes:
        name: registry name, e.g. "cortex-m7".
        description: one line for `qanas targets`.
        isa: instruction set, e.g. "x86_64", "armv7e-m", "armv8.1-m.main", "aarch64".
        cpu: CPU name as the compiler knows it ("cortex-m7"), or "native".
        features: ISA extensions ("fpu", "dsp", "mve", "neon").
        clock_hz: core clock, for converting cycles to seconds (0 when unknown).
        flash: code/constant memory, or None when unbounded (host).
        sram: data memory available to the arena, stack and statics, or None.
        toolchain: how to build C for it.
        tvm_target: the TVM target dict used for code generation.
        emulator: QEMU machine name ("mps2-an386"), "qemu-aarch64", or None.
        runner: "host", "qemu", "qemu-user", "serial" or "vela".
        board: board name for board variants, None for generic cores.
        boot: where the vector table must sit when it is not the start of `flash`
            (the Cortex-M55 of mps3-an547 boots from its ITCM at 0x0), or None.
        stack_bytes: main stack reserved by the firmware linker script (0: host).
        port: folder under runtime/ports/ with the board's timer and I/O, or None.
        uart_base: address of the console UART the port drives (CMSDK UART), or None.
        npu: an attached accelerator ("ethos-u55"), or None; qanas code runs on the CPU.
        flash_command: how a user flashes the board (documented default; overridable).
        weights_region: a separate memory the model's weights are linked into, or None to
            keep them in `flash` with the code. The MPS2/MPS3 FPGA images have external
            RAM beside the code memory (16 MiB PSRAM on MPS2, DDR on MPS3) that QEMU loads
            the ELF's segments into; on the real board the debugger or flash tool must
            preload it, like any external memory (docs/porting-a-board.md).
        npu_config: for NPU targets (runner "vela"), how Vela compiles for the NPU.
        kernel_isa: the path of the int8 kernel library (runtime/c/kernels) this target
            compiles: "mve" (Helium), "dsp" (Arm DSP extension), "neon", "avx2" or
            "portable" (docs/kernels.md); it decides the packed weight layout (Helium
            blocks for "mve", OHWI for every other).
    """

    name: str
    description: str
    isa: str
    cpu: str
    features: frozenset[str] = field(default_factory=frozenset)
    clock_hz: int = 0
    flash: MemoryRegion | None = None
    sram: MemoryRegion | None = None
    toolchain: Toolchain = Toolchain()
    tvm_target: dict = field(default_factory=lambda: {"kind": "c"})
    emulator: str | None = None
    runner: str = "host"
    board: str | None = None
    boot: MemoryRegion | None = None
    stack_bytes: int = 0
    port: str | None = None
    uart_base: int | None = None
    npu: str | None = None
    flash_command: tuple[str, ...] = ()
    weights_region: MemoryRegion | None = None
    npu_config: NpuConfig | None = None
    kernel_isa: str = "portable"

    @property
    def weights_memory(self) -> MemoryRegion | None:
        """The region the model's weights are linked into: `weights_region`, else `flash`."""
        return self.weights_region if self.weights_region is not None else self.flash

    def to_dict(self) -> dict:
        """JSON-friendly summary (used by `qanas targets --json`)."""
        return {
            "name": self.name,
            "description": self.description,
            "isa": self.isa,
            "cpu": self.cpu,
            "features": sorted(self.features),
            "clock_hz": self.clock_hz,
            "flash_bytes": self.flash.size if self.flash else None,
            "sram_bytes": self.sram.size if self.sram else None,
            "emulator": self.emulator,
            "runner": self.runner,
            "board": self.board,
            "memory": {
                kind: {"origin": hex(r.origin), "size": r.size, "name": r.name}
                for kind, r in (("flash", self.flash), ("sram", self.sram), ("boot", self.boot),
                                ("weights", self.weights_region))
                if r is not None
            },
            "stack_bytes": self.stack_bytes,
            "toolchain": {"cc": self.toolchain.cc, "cflags": list(self.toolchain.cflags),
                          "ldflags": list(self.toolchain.ldflags)},
            "tvm_target": dict(self.tvm_target),
            "npu": self.npu,
            "npu_config": self.npu_config.to_dict() if self.npu_config else None,
        }
