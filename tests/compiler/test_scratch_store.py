"""Kernel scratch remembered on disk (`compiler.scratch_store.PersistentScratchCache`).

A second cache on the same folder, in this process or another one, serves every kernel
the first one lowered, with the same plan; the file is named after the compiler's
version and the entries are keyed by the options, so neither a compiler change nor
another option reuses a size; torn lines are skipped.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from compiler.pipeline import CompileOptions
from compiler.plan_only import plan_model_memory
from compiler.scratch_store import PersistentScratchCache, compiler_digest
from tests.support.qdq_models import brevitas_block_model

UNSCHEDULED = CompileOptions(schedule=False)  # kernels that do have scratch


@pytest.fixture(scope="module")
def filled(tmp_path_factory):
    """A cache folder filled by planning a small block once: (model, folder, report, misses)."""
    model = brevitas_block_model(tmp_path_factory.mktemp("block"), size=16)
    folder = tmp_path_factory.mktemp("scratch")
    cache = PersistentScratchCache(folder)
    report = plan_model_memory(model, "host", UNSCHEDULED, cache, measure_unfused=False)
    assert cache.misses > 0 and cache.disk_hits == 0 and report.workspace_bytes > 0
    assert cache.path.parent == folder and compiler_digest() in cache.path.name
    return model, folder, report, cache.misses


def test_a_new_cache_on_the_same_folder_serves_every_kernel(filled):
    model, folder, report, misses = filled
    again = PersistentScratchCache(folder)
    assert plan_model_memory(model, "host", UNSCHEDULED, again, measure_unfused=False) == report
    assert again.misses == 0 and again.disk_hits == misses


@pytest.mark.slow
def test_another_process_reads_the_same_entries(filled):
    """The keys (TVM structural hashes) are the same in a new interpreter."""
    model, folder, _, misses = filled
    script = textwrap.dedent(f"""
        from compiler.pipeline import CompileOptions
        from compiler.plan_only import plan_model_memory
        from compiler.scratch_store import PersistentScratchCache
        cache = PersistentScratchCache({str(folder)!r})
        plan_model_memory({str(model)!r}, "host", CompileOptions(schedule=False), cache,
                          measure_unfused=False)
        print(cache.disk_hits, cache.misses)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, timeout=600)
    assert list(map(int, out.stdout.split()[-2:])) == [misses, 0]


def test_options_and_compiler_version_are_in_the_key(filled, monkeypatch):
    import compiler.version
    from compiler.workspace import ScratchCache

    model, folder, _, misses = filled
    lowered = {}

    class Recorder(ScratchCache):
        def put(self, func, kernel, schedule, tvm_target, nbytes):
            lowered[kernel] = func
            super().put(func, kernel, schedule, tvm_target, nbytes)

    plan_model_memory(model, "host", UNSCHEDULED, Recorder(), measure_unfused=False)
    kernel, func = next(iter(lowered.items()))
    key = PersistentScratchCache._disk_key
    target = {"kind": "c"}
    assert key(func, kernel, False, target) != key(func, kernel, True, target)
    assert key(func, kernel, False, target) != key(func, kernel, False, {"kind": "c", "mcpu": "x"})
    assert key(func, kernel, False, target) != key(func, "irb0_x", False, target)
    here = PersistentScratchCache(folder)
    assert here.get(func, kernel, False, target) is not None
    monkeypatch.setattr(compiler.version, "KERNEL_GENERATION",
                        compiler.version.KERNEL_GENERATION + 1)
    newer = PersistentScratchCache(folder)
    assert newer.path != here.path and not newer.path.exists()
    assert newer.get(func, kernel, False, target) is None


def test_torn_lines_are_skipped(filled, tmp_path):
    _, folder, _, misses = filled
    cache = PersistentScratchCache(folder)
    copy = tmp_path / cache.path.name
    copy.write_text(cache.path.read_text() + '{"key": "abc", "byt')  # a writer killed mid-line
    assert PersistentScratchCache(tmp_path)._disk == cache._disk and len(cache._disk) == misses
