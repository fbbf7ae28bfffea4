"""Acceptance: an extracted int8 subnet of every search space at demo size (64×128, 6 classes)
runs on cortex-m4, cortex-m7 and cortex-m55 in QEMU and on aarch64-linux under qemu-user,
bit-exact with the host build of the same emitted C, with the same instruction count on
two runs; a board too small for a subnet refuses it with the numbers, from the plan at
compile time and from the linker at link time; `qanas deploy` / `qanas bench --json` work
on a real subnet export.

Each space's ``min`` subnet is exported and compiled once, in the test of that space, and
the one project serves all four targets (one test per space rather than per target, so
that ``pytest -n 2`` cannot compile a space twice on two workers).

Every QEMU target links the weights into its external RAM (`Target.weights_region`: the
16 MiB PSRAM of MPS2 AN386/AN500, the DDR of MPS3 AN547), so the min subnet of every
registered space runs as it is, including those whose weights exceed the 4 MiB code
memory of MPS2 or the 2 MiB of MPS3 (``fmas-xception``'s min subnet holds about 15 MB;
it is a ``heavy`` case, `tests/support/space_cases.py`) but fit the PSRAM and the DDR. The test
checks that the weights really sit in that region and the code in the code memory.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from compiler.driver import compile_model
from compiler.errors import MemoryBudgetExceeded
from qanas.cli.main import main
from qanas.space import get_space, list_spaces
from runtime.firmware import (
    WEIGHTS_SECTION,
    FirmwareDoesNotFit,
    build_firmware,
    check_fits,
    prepare_firmware,
    section_sizes,
)
from runtime.runners.base import read_io
from runtime.runners.firmware_base import zero_inputs
from runtime.runners.qemu import QemuRunner
from runtime.runners.qemu_user import QemuUserRunner
from targets import get_target
from tests.support.firmware_util import (
    DEMO_SIZE,
    assert_bit_exact,
    export_subnet,
    inputs_and_reference,
)
from tests.support.space_cases import compiled_space_param
from tests.support.tools import require_tools

QEMU_TARGETS = ("cortex-m4", "cortex-m7", "cortex-m55")
TOOLS = ("gcc", "arm-none-eabi-gcc", "qemu-system-arm", "aarch64-linux-gnu-gcc", "qemu-aarch64")


@dataclass(frozen=True)
class Subnet:
    """An exported, compiled subnet with its seeded inputs and host reference outputs."""

    label: str
    onnx: Path
    project: Path
    inputs: dict
    expected: dict


def compile_subnet(space, which: str, directory: Path, label: str) -> Subnet:
    """Exports `which` of `space` at demo size, compiles it (cortex-m4), runs the host build."""
    directory.mkdir(parents=True, exist_ok=True)
    onnx_path = export_subnet(space, which, directory / "subnet.onnx")
    result = compile_model(str(onnx_path), "cortex-m4", directory / "project")
    assert result.quantized and not result.float_kernels, result.float_kernels
    inputs, expected = inputs_and_reference(result.out_dir)
    return Subnet(label, onnx_path, result.out_dir, inputs, expected)


def weights_address(elf: Path, target) -> tuple[int, int]:
    """(address, bytes) of the ELF's weights section, from ``objdump -h``."""
    objdump = target.toolchain.objcopy.replace("objcopy", "objdump")
    out = subprocess.run([objdump, "-h", str(elf)], capture_output=True, text=True,
                         check=True).stdout
    for line in out.splitlines():
        parts = line.split()
        if len(parts) > 4 and parts[1] == WEIGHTS_SECTION:
            return int(parts[3], 16), int(parts[2], 16)
    raise AssertionError(f"{elf} has no {WEIGHTS_SECTION} section:\n{out}")


def plan_refusal(project: Path, target: str) -> FirmwareDoesNotFit | None:
    """The plan's refusal of `project` on `target`, checked for its numbers; None if it fits."""
    t = get_target(target)
    try:
        check_fits(project, t)
    except FirmwareDoesNotFit as err:
        assert err.needed > err.size and err.size in (t.weights_memory.size, t.sram.size)
        for number in (err.size, err.needed, err.needed - err.size):
            assert str(number) in str(err), f"{number} missing from: {err}"
        return err
    return None


@pytest.mark.slow
@pytest.mark.toolchain
@pytest.mark.parametrize("space_name", [compiled_space_param(s) for s in list_spaces()])
def test_min_subnet_bit_exact_on_every_emulated_target(space_name, tmp_path):
    require_tools(*TOOLS)
    start = time.perf_counter()
    space = get_space(space_name)
    sub = compile_subnet(space, "min", tmp_path / "min", f"{space_name}:min")
    weights = json.loads((sub.project / "compile.json").read_text())["weights_bytes"]

    rows = []
    for target in QEMU_TARGETS:
        t = get_target(target)
        assert plan_refusal(sub.project, target) is None, f"{sub.label} must fit {target}"
        runner = QemuRunner(target)
        first = runner.run(sub.project, sub.inputs)
        assert_bit_exact(first.outputs, sub.expected)
        second = runner.run(sub.project, sub.inputs)
        assert second.protocol["ticks"] == first.protocol["ticks"], "instruction count varies"
        assert_bit_exact(second.outputs, sub.expected)
        # the weights sit in the target's weights region; code and constants in its flash
        address, size = weights_address(runner.image.elf, t)
        region = t.weights_region
        assert region.origin <= address and address + size <= region.origin + region.size
        assert weights <= size == runner.image.weights_region_bytes
        sections = section_sizes(runner.image.elf, t.toolchain.size)
        assert sum(sections.get(s, 0) for s in (".text", ".ARM.exidx", ".data")) <= t.flash.size
        p = first.protocol
        rows.append({"subnet": sub.label, "target": target, "instructions": p["latency"][0],
                     "flash_bytes": p["flash_bytes"], "weights_region": region.name,
                     "weights_region_bytes": size, "sram_bytes": p["sram_bytes"]})

    aarch64 = QemuUserRunner().run(sub.project, sub.inputs)
    assert_bit_exact(aarch64.outputs, sub.expected)
    rows.append({"subnet": sub.label, "target": "aarch64-linux", "bit_exact": True})
    print(json.dumps({"space": space_name, "size": DEMO_SIZE, "rows": rows,
                      "seconds": round(time.perf_counter() - start, 1)}))


@pytest.fixture(scope="module")
def small_subnet(tmp_path_factory) -> Path:
    """squeezenas-small's min subnet at demo size."""
    return export_subnet("squeezenas-small", "min",
                         tmp_path_factory.mktemp("small") / "subnet.onnx")


@pytest.fixture(scope="module")
def large_subnet(tmp_path_factory) -> Path:
    """squeezenas-small's min subnet at 256x512: its arena (input and stem output, about
    900 KiB) is over the STM32F746's 320 KiB SRAM, its weights fit the flash."""
    return export_subnet("squeezenas-small", "min",
                         tmp_path_factory.mktemp("large") / "subnet.onnx", size=(256, 512))


@pytest.mark.slow
def test_board_too_small_is_refused_from_the_plan_at_compile_time(large_subnet, tmp_path):
    board = get_target("stm32f746-disco")
    with pytest.raises(MemoryBudgetExceeded) as info:
        compile_model(str(large_subnet), board.name, tmp_path / "project", optimise="speed")
    text = str(info.value)
    arena, budget, over = map(int, re.search(
        r"arena of (\d+) bytes does not fit the (\d+)-byte budget .*?: (\d+) bytes over",
        text).groups())
    assert budget == board.sram.size == 320 * 1024 and arena > budget and over == arena - budget
    assert board.name in text
    assert not (tmp_path / "project" / "compile.json").exists()  # nothing half-written


@pytest.mark.slow
@pytest.mark.toolchain
def test_board_too_small_is_refused_at_link_time(large_subnet, tmp_path):
    require_tools("arm-none-eabi-gcc")
    board = get_target("stm32f746-disco")
    project = compile_model(str(large_subnet), "cortex-m7", tmp_path / "project",
                            optimise="speed").out_dir
    arena = json.loads((project / "compile.json").read_text())["arena_bytes"]
    # Skip the plan's check (tested above) and let the linker decide on the board's memory.
    fw = prepare_firmware(project, board, zero_inputs(read_io(project)[0]))
    with pytest.raises(FirmwareDoesNotFit) as info:
        build_firmware(fw, board)
    err = info.value
    assert (err.region, err.size) == ("SRAM", board.sram.size)
    assert err.needed >= arena + board.stack_bytes  # arena + stack + statics
    text = str(err)
    assert "region SRAM" in text and f"overflowed by {err.needed - err.size} bytes" in text
    assert str(board.sram.size) in text and board.name in text


@pytest.mark.slow
@pytest.mark.toolchain
def test_deploy_and_bench_json_on_a_subnet_export(small_subnet, tmp_path, capsys):
    require_tools("gcc", "arm-none-eabi-gcc", "qemu-system-arm")
    out = tmp_path / "m7"
    assert main(["deploy", str(small_subnet), "--target", "cortex-m7", "--out", str(out),
                 "--json"]) == 0
    deployed = json.loads(capsys.readouterr().out)
    assert Path(deployed["elf"]).is_file() and deployed["flash_bytes"] > 0
    assert main(["bench", str(out), "--target", "cortex-m7", "--runner", "qemu",
                 "--repeats", "2", "--json"]) == 0
    bench = json.loads(capsys.readouterr().out)
    assert set(bench["latency"]) == {"median", "min", "max", "unit"}
    assert set(bench["sram_bytes"]) == {"arena", "stack_peak", "static"}
    assert {"flash_bytes", "outputs_match", "max_abs_diff"} <= set(bench)
    assert bench["outputs_match"] is True and bench["max_abs_diff"] == 0.0
    assert bench["latency"]["unit"] == "instructions" and bench["latency"]["min"] > 0
    assert bench["flash_bytes"] == deployed["flash_bytes"]
    assert bench["sram_bytes"]["arena"] == deployed["sram_bytes"]["arena"]
    assert 0 < bench["sram_bytes"]["stack_peak"] < get_target("cortex-m7").stack_bytes
