"""Firmware in QEMU (Cortex-M4/M7/M55) vs the host build of the same emitted C.

One int8 conv project is compiled once; each target builds its firmware from it, runs in
QEMU with -icount shift=0 and must return the host's bytes exactly. Also: instruction
counts repeat run to run, the stack is measured, and a model that does not fit is
refused at link time with region and overflow.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess

import numpy as np
import pytest

from qanas.cli.main import main
from runtime.firmware import FirmwareDoesNotFit, build_firmware, prepare_firmware
from runtime.runners.qemu import QemuRunner
from targets import MemoryRegion, get_target
from tests.support.firmware_util import assert_bit_exact, compile_int8_conv, inputs_and_reference
from tests.support.tools import require_tools

pytestmark = pytest.mark.toolchain
QEMU_TARGETS = ["cortex-m4", "cortex-m7", "cortex-m55"]


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    require_tools("gcc", "arm-none-eabi-gcc", "qemu-system-arm")
    return compile_int8_conv(tmp_path_factory.mktemp("fw"))


@pytest.fixture(scope="module")
def reference(project):
    return inputs_and_reference(project)


@pytest.mark.parametrize("target", QEMU_TARGETS)
def test_qemu_bit_exact_with_host(project, reference, target):
    inputs, expected = reference
    result = QemuRunner(target, profile_layers=True).run(project, inputs, repeats=2)
    assert_bit_exact(result.outputs, expected)
    p = result.protocol
    assert p["unit"] == "instructions" and p["target"] == target and p["runs"] == 2
    assert p["toolchain"]["cc"] == "arm-none-eabi-gcc" and "apache-tvm" in p["compiler_version"]
    assert all(v > 0 for v in p["latency"])
    # per-kernel time is within the whole run's (the hooks add a few instructions)
    assert 0 < sum(layer["value"] for layer in p["layers"]) <= max(p["latency"])
    sram = p["sram_bytes"]
    assert 0 < sram["stack_peak"] < sram["stack_reserved"]
    assert sram["arena"] == json.loads((project / "compile.json").read_text())["arena_bytes"]
    weights = json.loads((project / "compile.json").read_text())["weights_bytes"]
    assert p["flash_bytes"] > weights  # the stored image, the weights in PSRAM/DDR included


def test_instruction_counts_repeat_run_to_run(project, reference):
    inputs, _ = reference
    runner = QemuRunner("cortex-m4", warmup=1)
    first = runner.run(project, inputs, repeats=2).protocol["ticks"]
    second = runner.run(project, inputs, repeats=2).protocol["ticks"]
    assert first == second


FIELDS = {"FLASH": "flash", "SRAM": "sram", "PSRAM": "weights_region"}


def _too_small(name: str, region: str, size: int):
    t = get_target(name)
    r = getattr(t, FIELDS[region])
    return dataclasses.replace(t, **{FIELDS[region]: MemoryRegion(r.name, r.origin, size)})


@pytest.mark.parametrize("region", ["FLASH", "SRAM", "PSRAM"])
def test_link_time_overflow_names_region_and_bytes(project, reference, region):
    inputs, _ = reference
    meta = json.loads((project / "compile.json").read_text())
    # FLASH: the code cannot fit; SRAM: the stack (16 KiB) cannot; PSRAM: the weights cannot
    size = {"FLASH": 4096, "SRAM": meta["arena_bytes"] + 1024,
            "PSRAM": meta["weights_bytes"] // 2}[region]
    target = _too_small("cortex-m4", region, size)
    fw = prepare_firmware(project, target, list(inputs.values()))
    with pytest.raises(FirmwareDoesNotFit) as info:
        build_firmware(fw, target)
    err = info.value
    assert err.region == region and err.size == size and err.needed > size
    assert f"region {region}" in str(err) and f"overflowed by {err.needed - size} bytes" in str(err)


def test_deploy_and_bench_cli(project, tmp_path, capsys):
    assert main(["deploy", str(project), "--target", "cortex-m7", "--json"]) == 0
    deployed = json.loads(capsys.readouterr().out)
    assert deployed["flash_bytes"] > 0 and deployed["io"] == "semihosting"
    assert (project / "firmware-cortex-m7" / "build" / "firmware.elf").is_file()
    assert (project / "firmware-cortex-m7" / "link.ld").is_file()
    assert main(["bench", str(project), "--target", "cortex-m7", "--runner", "qemu",
                 "--repeats", "2", "--json"]) == 0
    bench = json.loads(capsys.readouterr().out)
    assert bench["outputs_match"] is True and bench["max_abs_diff"] == 0.0
    assert bench["latency"]["unit"] == "instructions"
    assert bench["latency"]["min"] <= bench["latency"]["median"] <= bench["latency"]["max"]
    assert set(bench["sram_bytes"]) == {"arena", "stack_peak", "static"}
    assert bench["flash_bytes"] == deployed["flash_bytes"]
    assert np.isfinite(bench["latency"]["median"])


def test_bench_refuses_a_board_that_is_too_small(project, capsys):
    tiny = dataclasses.replace(get_target("nrf52840-dk"), flash=MemoryRegion("FLASH", 0, 64))
    from runtime.firmware import check_fits

    with pytest.raises(FirmwareDoesNotFit, match="FLASH is 64 bytes"):
        check_fits(project, tiny)


def test_objects_depend_on_the_model_headers(project, reference):
    # A model recompiled into the same project rewrites its headers: every object that
    # includes them (the harness's firmware_main.o too) must be rebuilt, not linked stale.
    inputs, _ = reference
    target = get_target("cortex-m4")
    fw = prepare_firmware(project, target, list(inputs.values()))
    build_firmware(fw, target)
    assert subprocess.run(["make", "-q", "-C", str(fw)]).returncode == 0  # up to date
    for header in project.rglob("*.h"):
        os.utime(header, (header.stat().st_atime, header.stat().st_mtime + 10))
    assert subprocess.run(["make", "-q", "-C", str(fw)]).returncode == 1  # stale
    build_firmware(fw, target)
