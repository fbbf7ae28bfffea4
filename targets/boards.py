"""Real boards: variants of the generic cores with the board's memory, clock and port.

A board differs from its core in what the linker and the benchmark need to know: the
flash and SRAM regions (origins and sizes from the vendor's reference manual), the core
clock that converts cycles to seconds, and the port that drives its cycle counter (DWT)
and console. They are flashed by a user-configured command (see docs/porting-a-board.md)
and run by the `serial` runner.
"""

from __future__ import annotations

from dataclasses import replace

from targets.builtin import CORTEX_M4, CORTEX_M7, CORTEX_M55, KIB, MIB, register_target
from targets.target import MemoryRegion

# A board keeps only its on-chip flash and SRAM: the weights go to flash with the code
# (the MPS2/MPS3 external RAM of the generic cores is not on these chips).
_BOARD = {"emulator": None, "runner": "serial", "port": "cortex-m-board", "weights_region": None}

STM32F746_DISCO = register_target(replace(
    CORTEX_M7, name="stm32f746-disco", board="stm32f746-disco",
    description="ST STM32F746G-DISCO: Cortex-M7 216 MHz, 1 MB flash, 320 KB SRAM",
    clock_hz=216_000_000,
    flash=MemoryRegion("FLASH", 0x08000000, 1 * MIB),
    sram=MemoryRegion("SRAM", 0x20000000, 320 * KIB),   # DTCM + SRAM1 + SRAM2, contiguous
    uart_base=None, flash_command=("pyocd", "flash", "-t", "stm32f746ngHx", "{elf}"),
    **_BOARD,
))

NUCLEO_H743ZI = register_target(replace(
    CORTEX_M7, name="nucleo-h743zi", board="nucleo-h743zi",
    description="ST NUCLEO-H743ZI: Cortex-M7 480 MHz, 2 MB flash, 512 KB AXI SRAM",
    clock_hz=480_000_000,
    flash=MemoryRegion("FLASH", 0x08000000, 2 * MIB),
    sram=MemoryRegion("SRAM", 0x24000000, 512 * KIB),   # AXI SRAM (D1 domain)
    uart_base=None, flash_command=("pyocd", "flash", "-t", "stm32h743zitx", "{elf}"),
    **_BOARD,
))

IMXRT1060_EVK = register_target(replace(
    CORTEX_M7, name="imxrt1060-evk", board="imxrt1060-evk",
    description="NXP MIMXRT1060-EVK: Cortex-M7 600 MHz, 8 MB QSPI flash, 1 MB OCRAM",
    clock_hz=600_000_000,
    flash=MemoryRegion("FLASH", 0x60000000, 8 * MIB),   # FlexSPI NOR (XIP)
    sram=MemoryRegion("SRAM", 0x20200000, 1 * MIB),     # OCRAM2 + FlexRAM as OCRAM
    uart_base=None, flash_command=("pyocd", "flash", "-t", "mimxrt1060", "{elf}"),
    **_BOARD,
))

NRF52840_DK = register_target(replace(
    CORTEX_M4, name="nrf52840-dk", board="nrf52840-dk",
    description="Nordic nRF52840-DK: Cortex-M4F 64 MHz, 1 MB flash, 256 KB SRAM",
    clock_hz=64_000_000,
    flash=MemoryRegion("FLASH", 0x00000000, 1 * MIB),
    sram=MemoryRegion("SRAM", 0x20000000, 256 * KIB),
    stack_bytes=8 * KIB,
    uart_base=None, flash_command=("nrfjprog", "--program", "{hex}", "--chiperase",
                                   "--verify", "--reset"),
    **_BOARD,
))

ALIF_E7_HP = register_target(replace(
    CORTEX_M55, name="alif-e7-hp", board="alif-e7-hp",
    description="Alif Ensemble E7 high-performance core: Cortex-M55 400 MHz + Ethos-U55, "
                "MRAM 5.5 MB, 1 MB DTCM",
    clock_hz=400_000_000, boot=None,
    flash=MemoryRegion("FLASH", 0x80000000, 5632 * KIB),  # MRAM
    sram=MemoryRegion("SRAM", 0x20000000, 1 * MIB),       # HP core DTCM
    npu="ethos-u55",
    uart_base=None, flash_command=("app-write-mram", "-p"),
    **_BOARD,
))
