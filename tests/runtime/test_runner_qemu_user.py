"""AArch64 Linux: the host harness cross-built and run under qemu-aarch64, bit-exact."""

from __future__ import annotations

import pytest

from runtime.runners.qemu_user import QemuUserRunner
from tests.support.firmware_util import assert_bit_exact, compile_int8_conv, inputs_and_reference
from tests.support.tools import require_tools

pytestmark = pytest.mark.toolchain


def test_aarch64_linux_bit_exact_with_host(tmp_path):
    require_tools("gcc", "aarch64-linux-gnu-gcc", "qemu-aarch64")
    project = compile_int8_conv(tmp_path, target="aarch64-linux")
    inputs, expected = inputs_and_reference(project)
    result = QemuUserRunner().run(project, inputs, repeats=2)
    assert_bit_exact(result.outputs, expected)
    assert result.protocol["target"] == "aarch64-linux" and len(result.latency_s) == 2
    assert (project / "build-aarch64-linux" / "host_main").is_file()


def test_rejects_a_target_that_is_not_user_mode():
    with pytest.raises(ValueError, match="aarch64-linux"):
        QemuUserRunner("cortex-m4")
