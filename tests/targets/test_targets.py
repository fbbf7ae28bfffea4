"""Targets as data: the registry, board variants, memory budgets, the CLI listing."""

from __future__ import annotations

import dataclasses
import json

import pytest

from qanas.cli.main import main
from runtime.firmware import FirmwareDoesNotFit, check_fits, render_linker_script
from targets import TARGETS, MemoryRegion, UnknownNameError, get_target

REQUIRED = ["host", "cortex-m4", "cortex-m7", "cortex-m55", "stm32f746-disco", "nucleo-h743zi",
            "imxrt1060-evk", "nrf52840-dk", "alif-e7-hp", "aarch64-linux"]
FIRMWARE = [n for n in TARGETS.names() if get_target(n).port is not None]
MIB = 1024 * 1024


def test_required_targets_are_registered():
    assert set(REQUIRED) <= set(TARGETS.names())


@pytest.mark.parametrize("name, cpu, sram_kib, flash_kib, mhz", [
    ("stm32f746-disco", "cortex-m7", 320, 1024, 216),
    ("nucleo-h743zi", "cortex-m7", 512, 2048, 480),
    ("imxrt1060-evk", "cortex-m7", 1024, 8192, 600),
    ("nrf52840-dk", "cortex-m4", 256, 1024, 64),
])
def test_board_budgets(name, cpu, sram_kib, flash_kib, mhz):
    t = get_target(name)
    assert (t.cpu, t.sram.size, t.flash.size, t.clock_hz) == (
        cpu, sram_kib * 1024, flash_kib * 1024, mhz * 1_000_000)
    assert t.runner == "serial" and t.board == name


def test_qemu_machines_and_features():
    assert get_target("cortex-m4").emulator == "mps2-an386"
    assert get_target("cortex-m7").emulator == "mps2-an500"
    m55 = get_target("cortex-m55")
    assert m55.emulator == "mps3-an547" and "mve" in m55.features
    assert get_target("alif-e7-hp").npu == "ethos-u55"
    assert get_target("aarch64-linux").runner == "qemu-user"


@pytest.mark.parametrize("name, region, origin, size", [
    # QEMU 7.2 hw/arm/mps2.c: machine->ram ("mps.ram", 16 MiB) at mmc->psram_base
    ("cortex-m4", "PSRAM", 0x21000000, 16 * MIB),  # mps2-an386
    ("cortex-m7", "PSRAM", 0x60000000, 16 * MIB),  # mps2-an500
    # QEMU 7.2 hw/arm/mps2-tz.c an547_raminfo: "DDR", 0x60000000, MPS3_DDR_SIZE (2 GiB)
    ("cortex-m55", "DDR", 0x60000000, 2048 * MIB),  # mps3-an547
])
def test_qemu_machines_have_a_weights_region(name, region, origin, size):
    t = get_target(name)
    assert (t.weights_region.name, t.weights_region.origin, t.weights_region.size) == (
        region, origin, size)
    assert t.weights_memory is t.weights_region
    assert region not in {t.flash.name, t.sram.name, t.boot.name if t.boot else None}
    ends = sorted((r.origin, r.origin + r.size) for r in (t.flash, t.sram, t.weights_region))
    assert all(a[1] <= b[0] for a, b in zip(ends, ends[1:], strict=False)), "regions overlap"


@pytest.mark.parametrize("name", [n for n in FIRMWARE if get_target(n).board])
def test_boards_keep_weights_in_their_on_chip_flash(name):
    t = get_target(name)
    assert t.weights_region is None and t.weights_memory is t.flash
    assert "QANAS_WEIGHTS" not in render_linker_script(t) and ".weights" not in (
        render_linker_script(t))


def test_board_variant_is_a_replace_of_its_core():
    board, core = get_target("stm32f746-disco"), get_target("cortex-m7")
    assert board.toolchain == core.toolchain and board.isa == core.isa
    with pytest.raises(dataclasses.FrozenInstanceError):
        board.clock_hz = 1  # type: ignore[misc]


def test_unknown_target_lists_valid_names():
    with pytest.raises(UnknownNameError, match="cortex-m4.*cortex-m55"):
        get_target("cortex-m99")


def test_cli_targets_json(capsys):
    assert main(["targets", "--json"]) == 0
    listed = {t["name"]: t for t in json.loads(capsys.readouterr().out)["targets"]}
    assert set(REQUIRED) <= set(listed)
    assert listed["nrf52840-dk"]["sram_bytes"] == 256 * 1024
    assert listed["cortex-m55"]["memory"]["boot"]["origin"] == "0x0"
    assert listed["cortex-m4"]["memory"]["weights"] == {"origin": "0x21000000",
                                                        "size": 16 * MIB, "name": "PSRAM"}
    assert "weights" not in listed["stm32f746-disco"]["memory"]


def test_cli_unknown_target_exits_2(capsys):
    assert main(["targets", "nope", "--json"]) == 2
    assert "stm32f746-disco" in json.loads(capsys.readouterr().out)["error"]


@pytest.mark.parametrize("name", FIRMWARE)
def test_linker_script_has_the_real_sizes(name):
    t = get_target(name)
    text = render_linker_script(t)
    assert f"ORIGIN = {t.flash.origin:#010x}, LENGTH = {t.flash.size}" in text
    assert f"ORIGIN = {t.sram.origin:#010x}, LENGTH = {t.sram.size}" in text
    if t.weights_region is not None:
        w = t.weights_region
        assert f"{w.name} (r) : ORIGIN = {w.origin:#010x}, LENGTH = {w.size}" in text
        assert f"> {w.name}" in text and "KEEP(*(.qanas_weights*))" in text
    assert "@" not in text.split("*/", 1)[1]  # every placeholder was filled


def test_check_fits_refuses_with_the_numbers(tmp_path):
    t = get_target("nrf52840-dk")
    arena = t.sram.size  # + stack does not fit
    (tmp_path / "compile.json").write_text(json.dumps({"arena_bytes": arena,
                                                       "weights_bytes": 1000}))
    with pytest.raises(FirmwareDoesNotFit) as info:
        check_fits(tmp_path, t)
    err = info.value
    assert (err.region, err.size, err.needed) == ("SRAM", t.sram.size, arena + t.stack_bytes)
    assert str(t.stack_bytes) in str(err) and str(t.sram.size) in str(err)
    small = dataclasses.replace(t, sram=MemoryRegion("SRAM", t.sram.origin, 10 * 1024 * 1024),
                                flash=MemoryRegion("FLASH", 0, 999))
    with pytest.raises(FirmwareDoesNotFit, match="FLASH is 999 bytes"):
        check_fits(tmp_path, small)


def test_check_fits_counts_weights_against_the_weights_region(tmp_path):
    t = get_target("cortex-m4")  # 4 MiB code memory, 16 MiB PSRAM
    weights = 4_208_644  # fmas-mbv2's min subnet: over the code memory, inside the PSRAM
    (tmp_path / "compile.json").write_text(json.dumps({"arena_bytes": 1000,
                                                       "weights_bytes": weights}))
    budget = check_fits(tmp_path, t)
    assert weights > t.flash.size
    assert (budget["weights_region"], budget["weights_region_bytes"]) == ("PSRAM", 16 * MIB)
    too_big = 16 * MIB + 1
    (tmp_path / "compile.json").write_text(json.dumps({"arena_bytes": 1000,
                                                       "weights_bytes": too_big}))
    with pytest.raises(FirmwareDoesNotFit) as info:
        check_fits(tmp_path, t)
    err = info.value
    assert (err.region, err.size, err.needed) == ("PSRAM", 16 * MIB, too_big)
    assert "PSRAM is 16777216 bytes" in str(err) and "0x21000000" in str(err)
    assert "over by 1" in str(err)
