"""Native tools the tests need: fail in CI, skip locally when one is missing."""

from __future__ import annotations

import os
import shutil

import pytest


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
