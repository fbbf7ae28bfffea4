"""Firmware projects: an emitted C project + a board port + the harness → an ELF.

`prepare_firmware` writes ``<project>/firmware-<target>/`` next to the model's own C:
a Makefile with the target's toolchain and flags, the linker script rendered from
``runtime/ports/cortex-m/firmware.ld.in`` with the target's real flash and SRAM, the
port (startup, vector table, timer, console), the harness and the inputs as ``const``
arrays. `build_firmware` runs make and measures the ELF; a model that does not fit fails
at link time and is reported as a `FirmwareDoesNotFit` naming region, size and overflow.
`check_fits` makes the same decision earlier, from the compiler's memory plan.

A target with a `weights_region` (the PSRAM of MPS2, the DDR of MPS3) gets the model's
weights linked there: weights.c is compiled with ``QANAS_WEIGHTS_SECTION`` putting every
array in ``.qanas_weights``, which the linker script places in that region. The arrays
stay ``const`` and are used in place (no copy at startup): QEMU loads the ELF's segments
into its RAM, and on a real board the debugger or flash tool preloads the region (the
``weights.bin`` written beside ``firmware.bin``, or the ``.hex``, which holds both).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from runtime import C_RUNTIME_DIR
from runtime.build_cache import cached_cc
from targets import Target

PORTS_DIR = Path(__file__).parent / "ports"
COMMON_PORT = PORTS_DIR / "cortex-m"
COMMON_PORT_FILES = ("startup.S", "vectors.c", "stack.c", "stack.h", "semihosting.c",
                     "semihosting.h", "port.h", "cortex_m.h", "qanas_profile.h")
FLASH_SECTIONS = (".vectors", ".text", ".ARM.exidx", ".data")
WEIGHTS_SECTION = ".weights"  # output section in the weights region (linker script)
WEIGHTS_INPUT_SECTION = ".qanas_weights"  # where QANAS_WEIGHTS_SECTION puts the arrays
_OVERFLOW = re.compile(r"region [`'](\w+)' overflowed by (\d+) bytes")


class FirmwareBuildError(RuntimeError):
    """The firmware did not compile or link; the message carries the toolchain's output."""


class FirmwareDoesNotFit(FirmwareBuildError, ValueError):
    """The model does not fit a memory region of the target.

    Attributes:
        region: "FLASH", "SRAM", or the name of the target's weights region ("PSRAM",
            "DDR"); the boot region's name when the vector table overflows it.
        size: bytes of the region.
        needed: bytes the image needs there.
    """

    def __init__(self, message: str, region: str, size: int, needed: int):
        super().__init__(message)
        self.region, self.size, self.needed = region, size, needed


@dataclass(frozen=True)
class FirmwareImage:
    """A linked firmware and its footprint.

    Attributes:
        elf: the linked image.
        target: target name.
        sections: section name → bytes (from `size -A`).
        flash_bytes: bytes of the stored image: .vectors + .text (with .rodata) +
            .ARM.exidx + .data initialisers + .weights (the model's weights where they sit
            in a separate `weights_region`; `weights_region_bytes` says how many).
        static_sram_bytes: .data + .bss, without the arena.
        arena_bytes: the model's arena (a static array in .bss).
        stack_bytes: the reserved main stack.
        toolchain: compiler, version and flags.
        weights_region_bytes: bytes of the image in the target's weights region (0 when
            the weights are in flash with the code).
    """

    elf: Path
    target: str
    sections: dict
    flash_bytes: int
    static_sram_bytes: int
    arena_bytes: int
    stack_bytes: int
    toolchain: dict
    weights_region_bytes: int = 0

    def to_dict(self) -> dict:
        """JSON-friendly view."""
        return {"elf": str(self.elf), "target": self.target, "sections": self.sections,
                "flash_bytes": self.flash_bytes, "static_sram_bytes": self.static_sram_bytes,
                "arena_bytes": self.arena_bytes, "stack_bytes": self.stack_bytes,
                "toolchain": self.toolchain, "weights_region_bytes": self.weights_region_bytes}


def firmware_dir(project_dir: Path, target: Target) -> Path:
    """Where the firmware of `target` for `project_dir` is written."""
    return Path(project_dir) / f"firmware-{target.name}"


def _require_firmware_target(target: Target) -> None:
    if target.port is None or target.flash is None or target.sram is None:
        raise ValueError(f"target {target.name!r} has no firmware port (runner "
                         f"{target.runner!r}); firmware targets have flash, SRAM and a port, "
                         "e.g. cortex-m4, cortex-m7, cortex-m55 or a board")


def check_fits(project_dir: Path, target: Target) -> dict:
    """Checks the compiler's plan against the target before anything is built.

    SRAM must hold the arena and the stack; the weights must fit the target's weights
    region (`Target.weights_memory`: its `weights_region`, else flash); code comes on top
    and is checked by the linker. Returns the budget as a dict.

    Raises:
        FirmwareDoesNotFit: with the region, its size and the bytes the plan needs.
    """
    _require_firmware_target(target)
    meta = json.loads((Path(project_dir) / "compile.json").read_text())
    weights = target.weights_memory
    where = "FLASH" if target.weights_region is None else weights.name
    checks = [("SRAM", target.sram.size, meta["arena_bytes"] + target.stack_bytes,
               f"arena {meta['arena_bytes']} B + stack {target.stack_bytes} B"),
              (where, weights.size, meta["weights_bytes"],
               f"weights {meta['weights_bytes']} B"
               + ("" if target.weights_region is None else f" at {weights.origin:#010x}"))]
    for region, size, needed, what in checks:
        if needed > size:
            raise FirmwareDoesNotFit(
                f"the model does not fit {target.name}: {region} is {size} bytes, the plan "
                f"needs {needed} ({what}), over by {needed - size}; choose a smaller subnet "
                "or a board with more memory (`qanas targets`)", region, size, needed)
    return {"sram_bytes": target.sram.size, "flash_bytes": target.flash.size,
            "weights_region": where, "weights_region_bytes": weights.size,
            "arena_bytes": meta["arena_bytes"], "weights_bytes": meta["weights_bytes"],
            "stack_bytes": target.stack_bytes}


def render_linker_script(target: Target) -> str:
    """The linker script of `target`, from the port's template."""
    _require_firmware_target(target)
    text = (COMMON_PORT / "firmware.ld.in").read_text()
    boot = ""
    if target.boot is not None:
        boot = (f"  {target.boot.name} (rx) : ORIGIN = {target.boot.origin:#010x}, "
                f"LENGTH = {target.boot.size}\n")
    region, section = "", ""
    if target.weights_region is not None:
        w = target.weights_region
        region = f"  {w.name} (r) : ORIGIN = {w.origin:#010x}, LENGTH = {w.size}\n"
        section = "\n".join([
            "  /* The model's weights (weights.c, QANAS_WEIGHTS_SECTION): const, used in place",
            f"   * in {w.name}; the loader (QEMU, or the debugger on a board) puts them there. */",
            f"  {WEIGHTS_SECTION} : ALIGN(16)",
            "  {",
            "    __weights_start = .;",
            f"    KEEP(*({WEIGHTS_INPUT_SECTION}*))",
            "    . = ALIGN(16);",
            "    __weights_end = .;",
            f"  }} > {w.name}",
            "", ""])
    values = {"TARGET": target.name, "BOOT_REGION": boot,
              "WEIGHTS_REGION": region, "WEIGHTS_SECTION": section,
              "VECTOR_REGION": target.boot.name if target.boot else "FLASH",
              "FLASH_ORIGIN": f"{target.flash.origin:#010x}", "FLASH_SIZE": str(target.flash.size),
              "SRAM_ORIGIN": f"{target.sram.origin:#010x}", "SRAM_SIZE": str(target.sram.size),
              "STACK_BYTES": str(target.stack_bytes)}
    for key, value in values.items():
        text = text.replace(f"@{key}@", value)
    return text


def render_inputs(inputs: Sequence[np.ndarray], target: Target, repeats: int,
                  warmup: int) -> tuple[str, str]:
    """``firmware_data.h`` and ``firmware_data.c``: the inputs as const arrays (in flash)."""
    header = "\n".join([
        "/* Inputs of the firmware run, generated by runtime/firmware.py; do not edit. */",
        "#ifndef QANAS_FIRMWARE_DATA_H_", "#define QANAS_FIRMWARE_DATA_H_", "",
        "#include <stddef.h>", "#include <stdint.h>", "",
        f'#define QANAS_FW_TARGET "{target.name}"',
        f"#define QANAS_FW_NUM_INPUTS {len(inputs)}u",
        f"#define QANAS_FW_REPEATS {int(repeats)}u",
        f"#define QANAS_FW_WARMUP {int(warmup)}u", "",
        "extern const uint8_t *const qanas_fw_inputs[];",
        "extern const size_t qanas_fw_input_bytes[];", "",
        "#endif /* QANAS_FIRMWARE_DATA_H_ */", ""])
    body = ["/* Generated by runtime/firmware.py; do not edit. */",
            '#include "firmware_data.h"', ""]
    for i, a in enumerate(inputs):
        raw = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<"), copy=False).tobytes()
        body.append(f"static const uint8_t kInput{i}[{len(raw)}] __attribute__((aligned(16))) = {{")
        for start in range(0, len(raw), 16):
            body.append("  " + ", ".join(f"0x{b:02x}" for b in raw[start:start + 16]) + ",")
        body.append("};")
    names = ", ".join(f"kInput{i}" for i in range(len(inputs)))
    sizes = ", ".join(f"{np.asarray(a).nbytes}u" for a in inputs)
    body += ["", f"const uint8_t *const qanas_fw_inputs[] = {{{names}}};",
             f"const size_t qanas_fw_input_bytes[] = {{{sizes}}};", ""]
    return header, "\n".join(body)


def render_makefile(target: Target, defines: Sequence[str]) -> str:
    """The firmware Makefile: model sources from ``..`` (sources.mk), port and harness here.

    With a `weights_region`, ``firmware.bin`` is the code image alone (a flat binary across
    both regions would span the gap between them) and ``weights.bin`` the weights, to be
    loaded at the region's origin; the ``.hex`` holds both at their addresses.
    """
    tc = target.toolchain
    size = tc.size
    binaries = ["\t$(OBJCOPY) -O binary $@ $(BUILD)/firmware.bin"]
    if target.weights_region is not None:
        binaries = [f"\t$(OBJCOPY) -O binary -R {WEIGHTS_SECTION} $@ $(BUILD)/firmware.bin",
                    f"\t$(OBJCOPY) -O binary -j {WEIGHTS_SECTION} $@ $(BUILD)/weights.bin"
                    f"  # at {target.weights_region.origin:#010x} "
                    f"({target.weights_region.name})"]
    return "\n".join([
        f"# Firmware of the model in .. for {target.name}; generated by runtime/firmware.py.",
        "# `make` builds build/firmware.elf (and .bin/.hex); see docs/porting-a-board.md.",
        "MODEL_DIR := ..",
        "include $(MODEL_DIR)/sources.mk",
        "",
        f"CC := {tc.cc}",
        f"OBJCOPY := {tc.objcopy or 'objcopy'}",
        f"SIZE := {size}",
        f"CFLAGS := {' '.join(tc.cflags)}",
        f"LDFLAGS := {' '.join(tc.ldflags)}",
        "DEFINES := -DQANAS_PREFIX=$(QANAS_PREFIX) -DQANAS_PREFIX_UPPER=$(QANAS_PREFIX_UPPER) \\",
        "  $(QANAS_KERNEL_DEFINES) \\",
        f"  {' '.join(defines)}",
        "INCLUDES := -I. -Iport -I$(MODEL_DIR) -I$(MODEL_DIR)/include "
        "-I$(MODEL_DIR)/runtime/include -I$(MODEL_DIR)/runtime/kernels",
        "WARNINGS := -Wall -Wextra -Werror",
        "DEPFLAGS := -MMD -MP",
        "BUILD := build",
        "",
        "MODEL_OBJS := $(QANAS_MODEL_SRCS:%.c=$(BUILD)/model/%.o)",
        "LOCAL_OBJS := $(BUILD)/startup.o $(BUILD)/vectors.o $(BUILD)/stack.o \\",
        "  $(BUILD)/semihosting.o $(BUILD)/port.o $(BUILD)/firmware_main.o \\",
        "  $(BUILD)/firmware_data.o",
        "",
        "all: $(BUILD)/firmware.elf",
        "",
        "$(BUILD)/model/%.o: $(MODEL_DIR)/%.c",
        "\t@mkdir -p $(dir $@)",
        "\t$(CC) $(CFLAGS) $(WARNINGS) $(DEPFLAGS) $(DEFINES) $(INCLUDES) -c $< -o $@",
        "",
        "$(BUILD)/%.o: port/%.c",
        "\t@mkdir -p $(dir $@)",
        "\t$(CC) $(CFLAGS) $(WARNINGS) $(DEPFLAGS) $(DEFINES) $(INCLUDES) -c $< -o $@",
        "",
        "$(BUILD)/%.o: port/%.S",
        "\t@mkdir -p $(dir $@)",
        "\t$(CC) $(CFLAGS) $(DEFINES) -c $< -o $@",
        "",
        "$(BUILD)/%.o: %.c firmware_data.h",
        "\t@mkdir -p $(dir $@)",
        "\t$(CC) $(CFLAGS) $(WARNINGS) $(DEPFLAGS) $(DEFINES) $(INCLUDES) -c $< -o $@",
        "",
        "$(BUILD)/firmware.elf: $(MODEL_OBJS) $(LOCAL_OBJS) link.ld",
        "\t$(CC) $(LDFLAGS) -T link.ld -Wl,-Map=$(BUILD)/firmware.map \\",
        "\t  $(LOCAL_OBJS) $(MODEL_OBJS) -lm -lc -lgcc -o $@",
        *binaries,
        "\t$(OBJCOPY) -O ihex $@ $(BUILD)/firmware.hex",
        "",
        "size: $(BUILD)/firmware.elf",
        "\t$(SIZE) -A $<",
        "",
        "clean:",
        "\trm -rf $(BUILD)",
        "",
        "# each object's header dependencies (a recompiled model rebuilds what includes it)",
        "-include $(MODEL_OBJS:.o=.d) $(LOCAL_OBJS:.o=.d)",
        "",
        ".PHONY: all size clean",
        ""])


def _write_if_changed(path: Path, text: str) -> None:
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def prepare_firmware(project_dir: Path, target: Target, inputs: Sequence[np.ndarray], *,
                     io: str = "semihosting", profile_layers: bool = False,
                     repeats: int = 1, warmup: int = 0) -> Path:
    """Writes the firmware project of `target` for the emitted project `project_dir`.

    Args:
        project_dir: a project written by `compiler.driver.compile_model`.
        target: a target with a port (Cortex-M core or board).
        inputs: the model's inputs in order, embedded as const arrays.
        io: "semihosting" (run once and exit) or "uart" (the serial protocol).
        profile_layers: time each kernel (`@L` lines).
        repeats, warmup: defaults when the runner passes no command line.

    Returns:
        The firmware directory (``<project>/firmware-<target>``).
    """
    _require_firmware_target(target)
    if io not in ("semihosting", "uart"):
        raise ValueError(f"io must be 'semihosting' or 'uart', got {io!r}")
    if io == "uart" and target.uart_base is None and target.port == "qemu-mps":
        raise ValueError(f"target {target.name!r} has no UART address")
    project_dir = Path(project_dir)
    if not (project_dir / "sources.mk").is_file():
        raise FileNotFoundError(f"{project_dir}/sources.mk not found: not an emitted project "
                                "(run `qanas compile MODEL --out DIR` first)")
    fw = firmware_dir(project_dir, target)
    (fw / "port").mkdir(parents=True, exist_ok=True)
    for name in COMMON_PORT_FILES:
        _write_if_changed(fw / "port" / name, (COMMON_PORT / name).read_text())
    _write_if_changed(fw / "port" / "port.c", (PORTS_DIR / target.port / "port.c").read_text())
    _write_if_changed(fw / "firmware_main.c",
                      (C_RUNTIME_DIR / "harness" / "firmware_main.c").read_text())
    defines = [f"-DQANAS_PORT_CLOCK_HZ={target.clock_hz}u"]
    if target.uart_base is not None:
        defines.append(f"-DQANAS_PORT_UART_BASE={target.uart_base:#x}u")
    if target.cpu == "cortex-m7":
        defines.append("-DQANAS_PORT_CORTEX_M7")
    if target.weights_region is not None:
        defines.append("'-DQANAS_WEIGHTS_SECTION=__attribute__((section("
                       f'"{WEIGHTS_INPUT_SECTION}")))\'')
    if io == "uart":
        defines.append("-DQANAS_IO_UART")
    if profile_layers:
        defines.append("-DQANAS_PROFILE_LAYERS")
    header, data = render_inputs(list(inputs), target, repeats, warmup)
    _write_if_changed(fw / "firmware_data.h", header)
    _write_if_changed(fw / "firmware_data.c", data)
    _write_if_changed(fw / "link.ld", render_linker_script(target))
    makefile = render_makefile(target, defines)
    if (fw / "Makefile").exists() and (fw / "Makefile").read_text() != makefile:
        shutil.rmtree(fw / "build", ignore_errors=True)  # flags changed: rebuild everything
    _write_if_changed(fw / "Makefile", makefile)
    return fw


def _toolchain_version(cc: str) -> str:
    try:
        out = subprocess.run([cc, "--version"], capture_output=True, text=True, check=True)
        return out.stdout.splitlines()[0]
    except (OSError, subprocess.CalledProcessError, IndexError):
        return "unknown"


def section_sizes(elf: Path, size_tool: str) -> dict[str, int]:
    """Section name → bytes of `elf`, from ``size -A``."""
    out = subprocess.run([size_tool, "-A", str(elf)], capture_output=True, text=True)
    if out.returncode != 0:
        raise FirmwareBuildError(f"{size_tool} -A {elf} failed: {out.stderr}")
    sizes = {}
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith(".") and parts[1].isdigit():
            sizes[parts[0]] = int(parts[1])
    return sizes


def _overflow_error(log: str, target: Target) -> FirmwareDoesNotFit | None:
    found = _OVERFLOW.findall(log)
    if not found:
        return None
    region, over = found[0][0], int(found[0][1])
    regions = {r.name: r for r in (target.flash, target.sram, target.boot,
                                   target.weights_region) if r is not None}
    size = regions[region].size if region in regions else 0
    others = "; ".join(f"region {r} overflowed by {n} bytes" for r, n in found[1:])
    return FirmwareDoesNotFit(
        f"the firmware does not fit {target.name}: region {region} ({size} bytes at "
        f"{regions[region].origin:#010x}) overflowed by {over} bytes (needs {size + over})"
        + (f"; also {others}" if others else "")
        + "; choose a smaller subnet or a board with more memory (`qanas targets`)",
        region, size, size + over)


def build_firmware(fw_dir: Path, target: Target, jobs: int = 2) -> FirmwareImage:
    """Runs make in `fw_dir` and measures the ELF.

    Raises:
        FirmwareDoesNotFit: the linker reported a region overflow.
        FirmwareBuildError: any other compile or link error (with the tool's output).
    """
    fw_dir = Path(fw_dir)
    proc = subprocess.run(["make", "-s", "-C", str(fw_dir), f"-j{jobs}", "all",
                           f"CC={cached_cc(target.toolchain.cc)}"],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        log = proc.stdout + proc.stderr
        error = _overflow_error(log, target)
        if error is not None:
            raise error
        raise FirmwareBuildError(f"building the {target.name} firmware in {fw_dir} failed:\n"
                                 f"{log[-4000:]}")
    elf = fw_dir / "build" / "firmware.elf"
    sections = section_sizes(elf, target.toolchain.size)
    meta = json.loads((fw_dir.parent / "compile.json").read_text())
    arena = int(meta["arena_bytes"])
    return FirmwareImage(
        elf=elf, target=target.name, sections=sections,
        flash_bytes=sum(sections.get(s, 0) for s in (*FLASH_SECTIONS, WEIGHTS_SECTION)),
        static_sram_bytes=sections.get(".data", 0) + sections.get(".bss", 0) - arena,
        arena_bytes=arena, stack_bytes=sections.get(".stack", target.stack_bytes),
        toolchain={"cc": target.toolchain.cc, "version": _toolchain_version(target.toolchain.cc),
                   "cflags": list(target.toolchain.cflags),
                   "ldflags": list(target.toolchain.ldflags)},
        weights_region_bytes=sections.get(WEIGHTS_SECTION, 0))
