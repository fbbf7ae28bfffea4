"""scripts/install_toolchains.sh: its package list covers what its toolchain probes need.

A fresh machine gets exactly the packages the script lists; the probes then build and run
a tiny C program with every compiler. These tests keep the two in step: a probe that needs
a package the list forgot (as `libc6-dev-arm64-cross` once was) fails here, not on a new
machine.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
from pathlib import Path

import pytest

from tests.support.tools import require_tools

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "install_toolchains.sh"

# The packages the developers' guide names for a fresh machine.
REQUIRED = {"gcc-arm-none-eabi", "libnewlib-arm-none-eabi", "qemu-system-arm",
            "gcc-aarch64-linux-gnu", "libc6-dev-arm64-cross", "qemu-user", "chromium"}

# Which Debian package provides each command the probes run.
COMMAND_PACKAGE = {
    "gcc": "gcc",
    "ccache": "ccache",
    "arm-none-eabi-gcc": "gcc-arm-none-eabi",
    "qemu-system-arm": "qemu-system-arm",
    "aarch64-linux-gnu-gcc": "gcc-aarch64-linux-gnu",
    "qemu-aarch64": "qemu-user",
}


def _bash_array(name: str) -> list[str]:
    """The entries of the bash array NAME=( ... ) in the script, comments dropped."""
    text = SCRIPT.read_text()
    body = re.search(rf"^{name}=\((.*?)^\)", text, re.S | re.M)
    assert body is not None, f"{name} not found in {SCRIPT}"
    rows = []
    for line in body.group(1).splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            rows.append(line.strip('"'))
    return rows


def _probe_packages() -> dict[str, set[str]]:
    return {row.split()[0]: set(row.split()[1:]) for row in _bash_array("PROBE_PACKAGES")}


def _probe_commands() -> dict[str, set[str]]:
    """Probe name → the commands its build_probe / run_probe lines run."""
    lines = [ln for ln in SCRIPT.read_text().splitlines() if not ln.lstrip().startswith("#")]
    text = "\n".join(lines).replace("\\\n", " ")
    used: dict[str, set[str]] = {}
    for probe, cmd in re.findall(r"(?:build|run)_probe (\S+) (?:\"[^\"]*\" )?(\S+)", text):
        if cmd.startswith('"${qemu[@]}"'):
            cmd = "qemu-system-arm"
        used.setdefault(probe, set()).add(cmd)
    return used


def test_package_list_has_every_required_package():
    packages = set(_bash_array("PACKAGES"))
    assert REQUIRED <= packages, f"missing from PACKAGES: {sorted(REQUIRED - packages)}"


def test_every_probe_names_only_listed_packages():
    packages = set(_bash_array("PACKAGES"))
    for probe, needs in _probe_packages().items():
        assert needs, f"probe {probe} names no package"
        assert needs <= packages, f"probe {probe} needs unlisted {sorted(needs - packages)}"


def test_every_probe_command_is_provided_by_its_packages():
    probes = _probe_packages()
    commands = _probe_commands()
    assert set(commands) >= {"host-gcc", "arm-none-eabi-m4", "arm-none-eabi-m55",
                             "aarch64-linux-gnu", "chromium"}
    for probe, used in commands.items():
        assert probe in probes, f"probe {probe} is run but has no PROBE_PACKAGES row"
        for cmd in used:
            if cmd.startswith('"$'):
                continue  # a built probe binary or the browser found on the PATH
            assert COMMAND_PACKAGE.get(cmd) in probes[probe], (
                f"probe {probe} runs {cmd}, whose package {COMMAND_PACKAGE.get(cmd)} it "
                f"does not list")


def test_cross_probes_need_their_c_libraries():
    """The cross compilers alone cannot build <stdint.h>/<math.h>: the C libraries must be
    in the same probe's packages."""
    probes = _probe_packages()
    assert "libc6-dev-arm64-cross" in probes["aarch64-linux-gnu"]
    assert "libnewlib-arm-none-eabi" in probes["arm-none-eabi-m4"]
    assert "libnewlib-arm-none-eabi" in probes["arm-none-eabi-m55"]


@pytest.mark.toolchain
def test_command_package_map_matches_this_machine():
    require_tools(*COMMAND_PACKAGE, "dpkg")
    for cmd, package in COMMAND_PACKAGE.items():
        # The unversioned command (a symlink to e.g. gcc-12) belongs to the package we list.
        owner = subprocess.run(["dpkg", "-S", f"/usr/bin/{cmd}"], capture_output=True,
                               text=True)
        owners = {name.strip() for name in owner.stdout.split(":")[0].split(",")}
        assert package in owners, f"{cmd}: {owner.stdout.strip() or owner.stderr.strip()}"


@pytest.mark.toolchain
def test_script_probes_pass_here():
    result = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert "toolchains ok" in result.stderr


@pytest.mark.toolchain
def test_a_broken_cross_compiler_fails_the_install_naming_the_package(tmp_path):
    """A compiler that cannot find its C headers is an install failure naming the package."""
    fake = tmp_path / "aarch64-linux-gnu-gcc"
    fake.write_text("#!/bin/sh\necho 'fatal error: bits/libc-header-start.h: No such file "
                    "or directory' >&2\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    result = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True,
                            timeout=600, env=env)
    assert result.returncode == 1
    assert "libc-header-start.h" in result.stderr
    assert "libc6-dev-arm64-cross" in result.stderr
