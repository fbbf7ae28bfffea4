"""Built-in targets. Each registers itself in `TARGETS` on import.

Generic cores are the QEMU machines that model them (their memory map is QEMU's, checked
against hw/arm/mps2.c and hw/arm/mps2-tz.c of QEMU 7.2); real boards are variants of
these cores made with `dataclasses.replace` in `targets/boards.py`.
"""

from __future__ import annotations

from targets.registry import Registry
from targets.target import MemoryRegion, Target, Toolchain

TARGETS: Registry[Target] = Registry("target")

KIB = 1024
MIB = 1024 * KIB

# Flags shared by every Cortex-M build: size-friendly sections, no libc startup files.
# -funswitch-loops: gcc hoists the loop-invariant border tests of zero-point-padded
# kernels out of their inner loops (measured on squeezenas-small 64x128, cortex-m4:
# seed -2.8 %, max -8.5 % instructions against -O2 alone).
_CM_COMMON = ("-O2", "-funswitch-loops", "-std=c99", "-mthumb", "-ffunction-sections",
              "-fdata-sections")
_CM_LDFLAGS = ("-nostartfiles", "-Wl,--gc-sections", "--specs=nano.specs")


def host_kernel_isa(machine: str | None = None, cpuinfo: str | None = None) -> str:
    """The kernel library path of this machine: ``neon`` on aarch64, ``avx2`` on an x86
    CPU whose /proc/cpuinfo lists avx2, else ``portable``."""
    import platform
    from pathlib import Path

    machine = machine if machine is not None else platform.machine()
    if machine in ("aarch64", "arm64"):
        return "neon"
    if cpuinfo is None:
        info = Path("/proc/cpuinfo")
        cpuinfo = info.read_text(errors="replace") if info.is_file() else ""
    return "avx2" if " avx2" in cpuinfo.replace("\n", " ") else "portable"


_HOST_KERNEL_ISA = host_kernel_isa()


def register_target(target: Target) -> Target:
    """Registers `target` under `target.name`."""
    return TARGETS.register(target.name, target)


def cortex_m_toolchain(*cpu_flags: str) -> Toolchain:
    """The arm-none-eabi toolchain with `cpu_flags` (-mcpu, FPU and float ABI)."""
    return Toolchain(cc="arm-none-eabi-gcc", cflags=(*cpu_flags, *_CM_COMMON),
                     ldflags=(*cpu_flags, "-mthumb", *_CM_LDFLAGS),
                     objcopy="arm-none-eabi-objcopy", size="arm-none-eabi-size")


HOST = register_target(
    Target(
        name="host",
        description="this machine (x86_64/aarch64 Linux), native gcc; latency in seconds",
        isa="native",
        cpu="native",
        # -mavx2 where the CPU has it: the kernel library's AVX2 path (and wider
        # autovectorization of the TVM kernels).
        toolchain=Toolchain(cc="gcc", cflags=("-O2", "-funswitch-loops", "-std=c99",
                                              *(("-mavx2",) if _HOST_KERNEL_ISA == "avx2"
                                                else ()))),
        tvm_target={"kind": "c"},
        runner="host",
        kernel_isa=_HOST_KERNEL_ISA,
    )
)

# MPS2 FPGA images AN386 (M4) and AN500 (M7): ZBT SSRAM1 (code) at 0, SSRAM2/3 (data) at
# 0x2000_0000, 4 MiB each; CMSDK UART0 at 0x4000_4000; SYSCLK 25 MHz drives SysTick.
# The 16 MiB PSRAM (QEMU's "mps.ram", mps2_common_init: `memory_region_add_subregion(
# system_memory, mmc->psram_base, machine->ram)`, default_ram_size 16 MiB) holds the
# weights: at 0x2100_0000 on AN386, at 0x6000_0000 on AN500 (`mmc->psram_base = 0x60000000`;
# the AN500 has nothing at 0x2100_0000, only an unimplemented-device stub).
_MPS2_CODE = MemoryRegion("FLASH", 0x00000000, 4 * MIB)
_MPS2_DATA = MemoryRegion("SRAM", 0x20000000, 4 * MIB)
_AN386_PSRAM = MemoryRegion("PSRAM", 0x21000000, 16 * MIB)
_AN500_PSRAM = MemoryRegion("PSRAM", 0x60000000, 16 * MIB)

CORTEX_M4 = register_target(
    Target(
        name="cortex-m4",
        description="Arm Cortex-M4F (DSP, single-precision FPU) on QEMU mps2-an386",
        isa="armv7e-m", cpu="cortex-m4", features=frozenset({"fpu", "dsp"}),
        clock_hz=25_000_000, flash=_MPS2_CODE, sram=_MPS2_DATA,
        toolchain=cortex_m_toolchain("-mcpu=cortex-m4", "-mfloat-abi=hard",
                                     "-mfpu=fpv4-sp-d16"),
        tvm_target={"kind": "c"}, emulator="mps2-an386", runner="qemu",
        stack_bytes=16 * KIB, port="qemu-mps", uart_base=0x40004000,
        weights_region=_AN386_PSRAM, kernel_isa="dsp",
    )
)

CORTEX_M7 = register_target(
    Target(
        name="cortex-m7",
        description="Arm Cortex-M7 (DSP, double-precision FPU) on QEMU mps2-an500",
        isa="armv7e-m", cpu="cortex-m7", features=frozenset({"fpu", "fpu-dp", "dsp"}),
        clock_hz=25_000_000, flash=_MPS2_CODE, sram=_MPS2_DATA,
        toolchain=cortex_m_toolchain("-mcpu=cortex-m7", "-mfloat-abi=hard", "-mfpu=fpv5-d16"),
        tvm_target={"kind": "c"}, emulator="mps2-an500", runner="qemu",
        stack_bytes=16 * KIB, port="qemu-mps", uart_base=0x40004000,
        weights_region=_AN500_PSRAM, kernel_isa="dsp",
    )
)

# MPS3 AN547 (SSE-300): the core boots (secure) from the ITCM at 0; code goes to the
# 2 MiB SRAM at 0x0100_0000, data to the 4 MiB "sram 2" at 0x2100_0000, the weights to the
# DDR at 0x6000_0000 (an547_raminfo: "DDR", .base = 0x60000000, .size = MPS3_DDR_SIZE,
# 2 GiB on a 64-bit host, behind MPC 2, whose reset state lets the secure core and the
# ELF loader through); MAINCLK 32 MHz.
CORTEX_M55 = register_target(
    Target(
        name="cortex-m55",
        description="Arm Cortex-M55 (Helium/MVE, FPU) on QEMU mps3-an547",
        isa="armv8.1-m.main", cpu="cortex-m55",
        features=frozenset({"fpu", "fpu-dp", "dsp", "mve", "mve-fp"}),
        clock_hz=32_000_000,
        boot=MemoryRegion("ITCM", 0x00000000, 512 * KIB),
        flash=MemoryRegion("FLASH", 0x01000000, 2 * MIB),
        sram=MemoryRegion("SRAM", 0x21000000, 4 * MIB),
        weights_region=MemoryRegion("DDR", 0x60000000, 2048 * MIB),
        toolchain=cortex_m_toolchain("-mcpu=cortex-m55", "-mfloat-abi=hard"),
        tvm_target={"kind": "c"}, emulator="mps3-an547", runner="qemu",
        stack_bytes=16 * KIB, port="qemu-mps", uart_base=0x59303000, kernel_isa="mve",
    )
)

AARCH64_LINUX = register_target(
    Target(
        name="aarch64-linux",
        description="Cortex-A class boards (AArch64 Linux); qemu-aarch64 user mode here",
        isa="aarch64", cpu="cortex-a53", features=frozenset({"neon", "fpu"}),
        toolchain=Toolchain(cc="aarch64-linux-gnu-gcc",
                            cflags=("-O2", "-funswitch-loops", "-std=c99"),
                            ldflags=("-static",), objcopy="aarch64-linux-gnu-objcopy",
                            size="aarch64-linux-gnu-size"),
        tvm_target={"kind": "c"}, emulator="qemu-aarch64", runner="qemu-user",
        kernel_isa="neon",
    )
)
