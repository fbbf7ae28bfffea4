"""Arm Ethos-U NPU targets: the accelerator Vela compiles for, and a board that carries it.

An NPU target is compiled by Vela (`compiler.npu`), not by our C code generator: its
runner is ``"vela"`` (estimates, no execution) and it has no firmware port, so the code
that builds Cortex-M firmware for every target with a ``port`` leaves it alone.

Each target names Vela's accelerator configuration and a system configuration and memory
mode of Vela's bundled ``Arm/vela.ini``; ``clock_hz`` is that system configuration's
``core_clock`` (`tests/targets/test_npu_targets.py` reads the ini and checks it), so Vela's NPU
cycles / ``clock_hz`` is Vela's own inference-time estimate. The memory regions are a
representative board's, to budget the search:

* ``ethos-u55-128``: Arm Corstone-300 (MPS3 SSE-300 FPGA image / FVP, whose default
  Ethos-U55 has 128 MACs/cycle). Its memory map is the one our ``cortex-m55`` QEMU target
  uses (QEMU hw/arm/mps2-tz.c, an547): 4 MiB SRAM at 0x2100_0000 for the tensor arena,
  DDR at 0x6000_0000 for the model. Vela config: ``Ethos_U55_High_End_Embedded`` /
  ``Shared_Sram`` (arena in SRAM shared with the CPU, model in flash/DDR over AXI1): the
  pairing Arm's ML embedded evaluation kit uses for the U55 on Corstone-300.
* ``ethos-u55-256``: Alif Ensemble E7, high-performance subsystem (Cortex-M55 + Ethos-U55
  with 256 MACs/cycle): 1 MiB DTCM for the arena, 5.5 MiB MRAM for the model (the same
  regions as our ``alif-e7-hp`` board target, from Alif's E7 datasheet).
  Vela config: ``Ethos_U55_High_End_Embedded`` / ``Shared_Sram``.
* ``ethos-u65-256``: NXP i.MX 93 (Ethos-U65 with 256 MACs/cycle, driven by the Cortex-M33
  that runs TFLite Micro): 640 KiB on-chip OCRAM for Vela's fast cache, LPDDR4X (2 GiB
  on the i.MX 93 EVK) for the arena and the model (i.MX 93 datasheet / EVK user guide).
  Vela config: ``Ethos_U65_High_End`` / ``Dedicated_Sram_384KB`` (the arena in DRAM,
  a 384 KiB SRAM cache reserved for the NPU).
"""

from __future__ import annotations

from targets.builtin import KIB, MIB, cortex_m_toolchain, register_target
from targets.target import MemoryRegion, NpuConfig, Target

_M55 = {"isa": "armv8.1-m.main", "cpu": "cortex-m55",
        "features": frozenset({"fpu", "fpu-dp", "dsp", "mve", "mve-fp"}),
        "toolchain": cortex_m_toolchain("-mcpu=cortex-m55", "-mfloat-abi=hard"),
        "kernel_isa": "mve"}
_NPU = {"runner": "vela", "emulator": None, "port": None, "tvm_target": {"kind": "c"}}

ETHOS_U55_128 = register_target(Target(
    name="ethos-u55-128", board="corstone-300", npu="ethos-u55",
    description="Arm Ethos-U55 (128 MACs/cycle) on Corstone-300 (Cortex-M55); Vela "
                "estimates, Ethos_U55_High_End_Embedded 500 MHz, Shared_Sram",
    clock_hz=500_000_000,
    sram=MemoryRegion("SRAM", 0x21000000, 4 * MIB),
    flash=MemoryRegion("DDR", 0x60000000, 2048 * MIB),
    npu_config=NpuConfig("ethos-u55-128", "Ethos_U55_High_End_Embedded", "Shared_Sram",
                         500_000_000),
    **_M55, **_NPU,
))

ETHOS_U55_256 = register_target(Target(
    name="ethos-u55-256", board="alif-e7-hp", npu="ethos-u55",
    description="Arm Ethos-U55 (256 MACs/cycle) on Alif Ensemble E7 HP (Cortex-M55); Vela "
                "estimates, Ethos_U55_High_End_Embedded 500 MHz, Shared_Sram",
    clock_hz=500_000_000,
    sram=MemoryRegion("SRAM", 0x20000000, 1 * MIB),       # HP core DTCM
    flash=MemoryRegion("FLASH", 0x80000000, 5632 * KIB),  # MRAM
    npu_config=NpuConfig("ethos-u55-256", "Ethos_U55_High_End_Embedded", "Shared_Sram",
                         500_000_000),
    **_M55, **_NPU,
))

ETHOS_U65_256 = register_target(Target(
    name="ethos-u65-256", board="imx93", npu="ethos-u65",
    description="Arm Ethos-U65 (256 MACs/cycle) on NXP i.MX 93 (Cortex-M33 runs TFLM); Vela "
                "estimates, Ethos_U65_High_End 1 GHz, Dedicated_Sram_384KB",
    isa="armv8-m.main", cpu="cortex-m33", features=frozenset({"fpu", "dsp"}), kernel_isa="dsp",
    toolchain=cortex_m_toolchain("-mcpu=cortex-m33", "-mfloat-abi=hard", "-mfpu=fpv5-sp-d16"),
    clock_hz=1_000_000_000,
    sram=MemoryRegion("OCRAM", 0x20480000, 640 * KIB),
    flash=MemoryRegion("DDR", 0x80000000, 2048 * MIB),
    npu_config=NpuConfig("ethos-u65-256", "Ethos_U65_High_End", "Dedicated_Sram_384KB",
                         1_000_000_000),
    **_NPU,
))

NPU_TARGETS = (ETHOS_U55_128, ETHOS_U55_256, ETHOS_U65_256)
"""The Ethos-U targets, in registration order."""
