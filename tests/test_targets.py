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


def test_cli_unknown_target_exits_2(capsys):
    assert main(["targets", "nope", "--json"]) == 2
    assert "stm32f746-disco" in json.loads(capsys.readouterr().out)["error"]


@pytest.mark.parametrize("name", FIRMWARE)
def test_linker_script_has_the_real_sizes(name):
    t = get_target(name)
    text = render_linker_script(t)
    assert f"ORIGIN = {t.flash.origin:#010x}, LENGTH = {t.flash.size}" in text
    assert f"ORIGIN = {t.sram.origin:#010x}, LENGTH = {t.sram.size}" in text
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
