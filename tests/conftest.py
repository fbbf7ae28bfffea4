"""Shared pytest setup: quiet progress bars, one torch thread, toolchain checks that fail in CI."""

from __future__ import annotations

import os
import shutil

import pytest

os.environ.setdefault("QANAS_QUIET", "1")


def pytest_configure(config):
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover
        pass


def require_tools(*tools: str) -> None:
    """Fails (in CI) or skips (locally) when a native tool is missing.

    CI must never skip silently: `.ci/run` installs the toolchains, so a missing
    tool there is a broken CI setup and the test fails.
    """
    missing = [t for t in tools if shutil.which(t) is None]
    if not missing:
        return
    message = f"missing tools {missing}; install them with `make toolchains`"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def pytest_terminal_summary(terminalreporter):
    """Lists the ONNX conformance cases qanas refused, with the reason, so gaps are visible."""
    refused = sorted(value for report in terminalreporter.stats.get("passed", [])
                     for key, value in getattr(report, "user_properties", ())
                     if key == "conformance_refused")
    if refused:
        terminalreporter.section(f"ONNX conformance: {len(refused)} cases refused")
        for line in refused:
            terminalreporter.write_line(line)
