"""Ethos-U targets: registered, consistent with Vela's own configuration file, kept apart
from the Cortex-M firmware targets."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest

from targets import TARGETS, get_target

NPU = ["ethos-u55-128", "ethos-u55-256", "ethos-u65-256"]


def _vela_ini() -> configparser.ConfigParser:
    import ethosu.vela

    ini = Path(ethosu.vela.__file__).parents[1] / "config_files" / "Arm" / "vela.ini"
    parser = configparser.ConfigParser()
    parser.read(ini)
    return parser


@pytest.mark.parametrize("name", NPU)
def test_npu_target_matches_vela_ini(name):
    from ethosu.vela.architecture_features import Accelerator

    t = get_target(name)
    cfg = t.npu_config
    assert t.runner == "vela" and t.npu is not None and t.port is None and t.emulator is None
    assert cfg.accelerator == name  # the target is named after Vela's accelerator config
    assert cfg.accelerator in {a.value for a in Accelerator}
    ini = _vela_ini()
    system = f"System_Config.{cfg.system_config}"
    assert ini.has_section(system) and ini.has_section(f"Memory_Mode.{cfg.memory_mode}")
    assert cfg.clock_hz == t.clock_hz == int(float(ini[system]["core_clock"]))
    assert t.sram.size > 0 and t.flash.size > 0
    assert t.to_dict()["npu_config"]["system_config"] == cfg.system_config


def test_npu_targets_are_not_firmware_targets():
    firmware = [n for n in TARGETS.names() if get_target(n).port is not None]
    assert not set(NPU) & set(firmware)
    assert all(get_target(n).npu_config is None for n in firmware)


def test_u65_uses_a_dedicated_sram_mode_with_a_cache_that_fits():
    t = get_target("ethos-u65-256")
    ini = _vela_ini()
    cache = int(ini[f"Memory_Mode.{t.npu_config.memory_mode}"]["arena_cache_size"])
    assert t.npu_config.memory_mode.startswith("Dedicated_Sram") and cache <= t.sram.size
