"""Progress bars on stderr (stdout is reserved for the `--json` result)."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")


def progress(iterable: Iterable[T] | None = None, **kwargs) -> tqdm:
    """A tqdm bar on stderr; silent when QANAS_QUIET=1 (tests) or stderr is not wanted."""
    kwargs.setdefault("file", sys.stderr)
    kwargs.setdefault("dynamic_ncols", True)
    kwargs.setdefault("leave", False)
    kwargs.setdefault("disable", os.environ.get("QANAS_QUIET") == "1")
    return tqdm(iterable, **kwargs)
