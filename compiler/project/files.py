"""The files of an emitted project other than the model's own C: headers, runtime, Makefile.

Headers the kernels include are copied from the installed packages (``tvm/include``,
``tvm_ffi/include`` with dlpack) by following ``#include`` lines transitively, so the
project builds on a machine without TVM. The C runtime is copied from `runtime/c`.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path

from compiler.errors import CompilerError

_INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([^>"]+)[>"]', re.M)

RUNTIME_SOURCES = ("src/workspace.c", "src/status.c")
"""Runtime files every model links (paths under runtime/c)."""

LIBRARY_SOURCES = ("src/kernel_steps.c", "src/kernel_steps_s4.c")
"""Runtime files a model that calls the kernel library links (its step adapters; those of
the int4-weight convolutions in their own file)."""

KERNELS_SUBDIR = "kernels"
"""Where the kernel library (`compiler.kernels.KERNELS_DIR`) goes under the project's
``runtime/``."""


def tvm_include_dirs() -> list[Path]:
    """Include folders of the installed tvm and tvm_ffi packages."""
    import tvm
    import tvm_ffi

    dirs = [Path(tvm.__file__).parent / "include", Path(tvm_ffi.__file__).parent / "include"]
    missing = [d for d in dirs if not d.is_dir()]
    if missing:
        raise CompilerError(f"TVM headers not found in {missing}; reinstall apache-tvm")
    return dirs


def collect_headers(sources: Iterable[str], include_dirs: Sequence[Path]) -> dict[str, Path]:
    """Header name (as included) → file, for every header `sources` reach in `include_dirs`.

    Headers not found there (the C library's) are left to the toolchain.
    """
    found: dict[str, Path] = {}
    pending = [name for text in sources for name in _INCLUDE.findall(text)]
    while pending:
        name = pending.pop()
        if name in found:
            continue
        for d in include_dirs:
            path = d / name
            if path.is_file():
                found[name] = path
                pending.extend(_INCLUDE.findall(path.read_text(errors="replace")))
                break
    return found


def copy_headers(headers: dict[str, Path], dest: Path) -> list[str]:
    """Copies `headers` under `dest` keeping their include paths; returns the names."""
    for name, path in sorted(headers.items()):
        target = dest / name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return sorted(headers)


def copy_runtime(runtime_dir: Path, dest: Path) -> list[str]:
    """Copies the C runtime (include/, src/, harness/) to `dest`; returns relative paths."""
    copied = []
    for sub in ("include", "src", "harness"):
        for path in sorted((runtime_dir / sub).rglob("*")):
            if path.is_file() and path.suffix in (".c", ".h"):
                rel = path.relative_to(runtime_dir)
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, dest / rel)
                copied.append(str(rel))
    return copied


def copy_kernel_library(dest: Path) -> list[str]:
    """Copies the kernel library's sources and headers to `dest`; returns the file names."""
    from compiler.kernels.isa import KERNELS_DIR

    dest.mkdir(parents=True, exist_ok=True)
    copied = []
    for path in sorted(KERNELS_DIR.iterdir()):
        if path.is_file() and path.suffix in (".c", ".h"):
            shutil.copyfile(path, dest / path.name)
            copied.append(path.name)
    return copied


def library_sources() -> list[str]:
    """Project paths of the C files a model calling the kernel library adds."""
    from compiler.kernels.isa import ALL_KERNEL_SOURCES

    return [*[f"runtime/{s}" for s in LIBRARY_SOURCES],
            *[f"runtime/{KERNELS_SUBDIR}/{s}" for s in ALL_KERNEL_SOURCES]]


def render_makefile(prefix: str, kernel_files: Sequence[str], cc: str,
                    cflags: Sequence[str], library: bool = False,
                    kernel_isa: str = "portable") -> tuple[str, str]:
    """``sources.mk`` (the file lists a firmware build includes) and the host ``Makefile``.

    `library`: the model calls the kernel library, so its sources and the step adapters
    are built too. Weights packed for a `kernel_isa` other than ``mve`` are OHWI, which
    Helium's conv path cannot read: ``QANAS_KERNEL_DEFINES`` then keeps a Helium build of
    the project (a project compiled for another core) on the DSP path
    (``-DQANAS_KERNELS_NO_MVE``). Every build of the project passes the defines.
    """
    srcs = ["model.c", "weights.c", *[f"kernels/{k}" for k in kernel_files],
            *[f"runtime/{s}" for s in RUNTIME_SOURCES],
            *(library_sources() if library else [])]
    includes = "-I. -Iinclude -Iruntime/include" + (
        f" -Iruntime/{KERNELS_SUBDIR}" if library else "")
    sources_mk = "\n".join([
        "# Sources and include folders of the compiled model; a firmware Makefile includes",
        "# this file and adds its own startup code. Generated by qanas; do not edit.",
        f"QANAS_PREFIX := {prefix}",
        f"QANAS_PREFIX_UPPER := {prefix.upper()}",
        "QANAS_MODEL_SRCS := \\",
        *[f"  {s} \\" for s in srcs[:-1]],
        f"  {srcs[-1]}",
        f"QANAS_MODEL_INCLUDES := {includes}",
        "QANAS_WARNINGS := -Wall -Wextra -Werror",
        "QANAS_KERNEL_DEFINES :=" + (
            " -DQANAS_KERNELS_NO_MVE" if library and kernel_isa != "mve" else ""),
        "",
    ])
    makefile = "\n".join([
        "# Host build of the compiled model: `make` builds build/libmodel.a and",
        "# build/host_main (usage: build/host_main REPEATS OUT_DIR INPUT.bin ...).",
        "# Generated by qanas; do not edit.",
        "include sources.mk",
        "",
        f"CC ?= {cc}",
        f"CFLAGS ?= {' '.join(cflags)}",
        "LDLIBS ?= -lm",
        "BUILD ?= build",
        "",
        "OBJS := $(QANAS_MODEL_SRCS:%.c=$(BUILD)/%.o)",
        "",
        "all: $(BUILD)/libmodel.a $(BUILD)/host_main",
        "",
        "$(BUILD)/%.o: %.c",
        "\t@mkdir -p $(dir $@)",
        "\t$(CC) $(CFLAGS) $(QANAS_WARNINGS) $(QANAS_KERNEL_DEFINES) $(QANAS_MODEL_INCLUDES) "
        "-c $< -o $@",
        "",
        "$(BUILD)/libmodel.a: $(OBJS)",
        "\t$(AR) rcs $@ $^",
        "",
        "$(BUILD)/host_main: runtime/harness/host_main.c $(BUILD)/libmodel.a",
        "\t$(CC) $(CFLAGS) $(QANAS_WARNINGS) $(QANAS_MODEL_INCLUDES) \\",
        "\t  -DQANAS_PREFIX=$(QANAS_PREFIX) -DQANAS_PREFIX_UPPER=$(QANAS_PREFIX_UPPER) \\",
        "\t  $< $(BUILD)/libmodel.a $(LDLIBS) -o $@",
        "",
        "clean:",
        "\trm -rf $(BUILD)",
        "",
        ".PHONY: all clean",
        "",
    ])
    # CC ?= would not override make's built-in default "cc"; be explicit.
    makefile = makefile.replace(f"CC ?= {cc}", f"ifeq ($(origin CC),default)\nCC := {cc}\nendif")
    return sources_mk, makefile
