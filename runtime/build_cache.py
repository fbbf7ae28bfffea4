"""ccache in front of the C compiler for the builds qanas runs itself.

Every compiled project carries the same runtime and kernel library sources, so a latency
table, a search's latency check, a firmware per target or a test suite compiles those
files over and over with identical flags; only ``model.c`` and ``weights.c`` differ.
With ccache (a Debian package `scripts/install_toolchains.sh` installs) a repeated
source costs a cache lookup: the committed cortex-m7 latency table, 125 block models
and 3 references each compiled and built, took 682 s to build without it and 154 s with
it (``build_seconds`` in the tables' protocols, git 9a347a9 and after). The objects are ccache's copies of what the compiler wrote, so builds,
code sizes and instruction counts are unchanged.

The generated Makefiles name the plain compiler (a user builds them with or without
ccache); qanas's own ``make`` calls pass ``CC="ccache <cc>"`` on the command line.
``QANAS_CCACHE=0`` turns it off; without ccache on ``PATH`` builds call the compiler
directly.
"""

from __future__ import annotations

import os
import shutil

CCACHE_ENV = "QANAS_CCACHE"
"""Environment variable: ``0`` builds without ccache."""


def cached_cc(cc: str) -> str:
    """`cc` behind ccache when ccache is installed and not turned off (`CCACHE_ENV`)."""
    if os.environ.get(CCACHE_ENV, "1") == "0" or shutil.which("ccache") is None:
        return cc
    return f"ccache {cc}"
