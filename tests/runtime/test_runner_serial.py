"""The serial runner: the line protocol parser, and a whole board session end to end
against QEMU's UART on a TCP socket (pyserial ``socket://``), without a board."""

from __future__ import annotations

import zlib

import pytest

from runtime.runners.protocol import ProtocolError, parse_report
from runtime.runners.qemu import free_tcp_port, qemu_uart_board
from runtime.runners.serial import SerialRunner
from targets import get_target
from tests.support.firmware_util import assert_bit_exact, compile_int8_conv, inputs_and_reference
from tests.support.tools import require_tools


def _transcript(data: bytes, crc: int | None = None, status: str = "QANAS_OK") -> str:
    crc = zlib.crc32(data) if crc is None else crc
    return "\n".join([
        "boot banner from a vendor SDK",
        "@QANAS BEGIN proto=1 target=t model=m unit=cycles tick_hz=1000 repeats=2 warmup=0",
        "@T 0 120", "@T 1 118", "@L 0 100",
        f"@O 0 {len(data)} {crc:08x} out",
        f"@D 0 0 {data[:2].hex()}", f"@D 0 2 {data[2:].hex()}",
        "@S stack_peak=96 stack_size=1024 arena=64",
        f"@QANAS END status={status}"])


def test_parser_reassembles_and_checks_crc():
    data = bytes([1, 2, 250, 7])
    report = parse_report(_transcript(data))
    assert report.ticks == [120, 118] and report.layer_ticks == {0: 100}
    assert report.outputs[0] == data and report.memory["stack_peak"] == 96
    with pytest.raises(ProtocolError, match="CRC"):
        parse_report(_transcript(data, crc=zlib.crc32(data) ^ 1))


def test_parser_reports_errors_and_truncation():
    with pytest.raises(ProtocolError, match="run: QANAS_ERROR_KERNEL_FAILED"):
        parse_report("@QANAS ERROR status=QANAS_ERROR_KERNEL_FAILED where=run\n")
    with pytest.raises(ProtocolError, match="ended before"):
        parse_report(_transcript(b"abcd").rsplit("\n", 1)[0])


@pytest.mark.toolchain
def test_serial_session_against_qemu_uart(tmp_path):
    require_tools("gcc", "arm-none-eabi-gcc", "qemu-system-arm")
    project = compile_int8_conv(tmp_path)
    inputs, expected = inputs_and_reference(project)
    target = get_target("cortex-m4")
    port = free_tcp_port()
    boards = []

    def flash(elf):  # "flashing" = starting the emulated board with this image
        board = qemu_uart_board(target, elf, port=port)
        board.__enter__()
        boards.append(board)

    runner = SerialRunner(f"socket://127.0.0.1:{port}", target=target, flash=flash,
                          handshake_timeout_s=30, run_timeout_s=120)
    try:
        result = runner.run(project, inputs, repeats=2)
    finally:
        for board in boards:
            board.__exit__(None, None, None)
    assert_bit_exact(result.outputs, expected)
    p = result.protocol
    assert p["hello"]["target"] == "cortex-m4" and p["runs"] == 2 and p["warmup"] == 1
    assert p["unit"] == "instructions"  # QEMU's SysTick; a board reports cycles
    assert p["sram_bytes"]["stack_peak"] > 0


def test_serial_runner_flashes_with_the_board_command_unless_told_otherwise(tmp_path):
    from pathlib import Path

    from qanas.bench.runners import make_runner
    from runtime.runners.base import RunnerError
    from targets import get_target

    board = get_target("nucleo-h743zi")
    runner = make_runner("serial:socket://127.0.0.1:9", board, warmup=0, per_layer=False)
    assert runner.flash == "pyocd flash -t stm32h743zitx {elf}"
    custom = make_runner("serial:/dev/ttyACM0", board, 0, False, flash="west flash --elf {elf}")
    assert custom.flash == "west flash --elf {elf}"
    assert make_runner("serial:/dev/ttyACM0", board, 0, False, no_flash=True).flash is None

    missing = make_runner("serial:/dev/ttyACM0", board, 0, False,
                          flash="qanas-no-such-flasher {elf}")
    with pytest.raises(RunnerError, match="not installed.*--no-flash"):
        missing.flash_image(Path(tmp_path / "fw.elf"))
