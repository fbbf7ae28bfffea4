"""The kernel library and its runtime adapters build at every -O level on Cortex-M.

Firmware is debugged at -Og or -O0 and shipped at -O2 or -Os, so every C file a project
calling the library compiles (compiler.kernels.ALL_KERNEL_SOURCES, the runtime's files
and the step adapters) must build with -Wall -Wextra -Werror at each level. The
written-out asm loops are where this breaks: they hold nearly every core register, and
GCC refuses an asm it cannot allocate ("impossible constraints") at the levels that keep
a frame pointer or allocate registers less thoroughly. Compile only, no QEMU: the
bit-exact runs (test_kernel_library.py, test_int4_kernels.py) cover the code's results.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from compiler.kernels import ALL_KERNEL_SOURCES, KERNELS_DIR
from compiler.project.files import LIBRARY_SOURCES, RUNTIME_SOURCES, tvm_include_dirs
from targets import get_target
from tests.support.kernel_library_util import C_INCLUDE, WARNINGS
from tests.support.tools import require_tools

RUNTIME_C = C_INCLUDE.parent
OPT_LEVELS = ("-O0", "-O1", "-Og", "-Os", "-O2", "-O3")
TARGETS = ("cortex-m4", "cortex-m55")


def library_sources() -> list[Path]:
    """Every C file of the library and of the runtime a model calling it links."""
    return ([KERNELS_DIR / s for s in ALL_KERNEL_SOURCES]
            + [RUNTIME_C / s for s in RUNTIME_SOURCES + LIBRARY_SOURCES])


@pytest.mark.toolchain
@pytest.mark.parametrize("target_name", TARGETS)
@pytest.mark.parametrize("level", OPT_LEVELS)
def test_library_builds_at_every_opt_level(target_name: str, level: str, tmp_path: Path):
    target = get_target(target_name)
    require_tools(target.toolchain.cc)
    cflags = [level if f.startswith("-O") else f for f in target.toolchain.cflags]
    assert level in cflags, f"{target_name}'s flags name no -O level: {cflags}"
    includes = [f"-I{d}" for d in (KERNELS_DIR, C_INCLUDE, *tvm_include_dirs())]
    sources = library_sources()
    proc = subprocess.run([target.toolchain.cc, *cflags, *WARNINGS, *includes, "-c",
                           *[str(s) for s in sources]],
                          cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{target_name} {level}:\n{proc.stderr}"
    objects = sorted(p.stem for p in tmp_path.glob("*.o"))
    assert objects == sorted(s.stem for s in sources)
