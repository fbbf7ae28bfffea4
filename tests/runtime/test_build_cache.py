"""`runtime.build_cache`: qanas's own builds go through ccache, with the same results."""

from __future__ import annotations

import shutil
import subprocess

import numpy as np
import pytest

from compiler.driver import compile_model
from runtime.build_cache import CCACHE_ENV, cached_cc
from runtime.runners import get_runner
from tests.support.onnx_conformance import SUPPORTED, _int8_variant, _merged
from tests.support.tools import require_tools


def test_ccache_fronts_the_compiler_unless_turned_off(monkeypatch):
    monkeypatch.setenv(CCACHE_ENV, "0")
    assert cached_cc("arm-none-eabi-gcc") == "arm-none-eabi-gcc"
    monkeypatch.delenv(CCACHE_ENV)
    expected = "ccache gcc" if shutil.which("ccache") else "gcc"
    assert cached_cc("gcc") == expected


@pytest.mark.toolchain
def test_a_rebuilt_project_is_served_from_the_cache_with_equal_outputs(tmp_path, monkeypatch):
    require_tools("gcc", "make", "ccache")
    monkeypatch.setenv("CCACHE_DIR", str(tmp_path / "ccache"))
    model, feeds, _ = _merged(SUPPORTED[:1], _int8_variant)
    project = compile_model(model, "host", tmp_path / "p").out_dir
    first = get_runner("host").run(project, feeds).outputs
    shutil.rmtree(project / "build")
    second = get_runner("host").run(project, feeds).outputs
    stats = subprocess.run(["ccache", "--print-stats"], capture_output=True, text=True,
                           check=True).stdout
    counters = dict(line.split("\t") for line in stats.splitlines() if "\t" in line)
    hits = int(counters["direct_cache_hit"]) + int(counters["preprocessed_cache_hit"])
    assert hits >= 10  # the runtime, the kernel library and the model, all but the link
    for name, values in first.items():
        np.testing.assert_array_equal(second[name], values)
