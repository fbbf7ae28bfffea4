"""Golden files of the emitted C: any change in what `compile_model` writes is a reviewed diff.

Each model of `tests.support.golden_models` is compiled for the host and its ``model.h``,
``model.c``, ``weights.c`` and ``kernels/*.c`` are compared byte for byte with
``tests/compiler/golden/<case>/``. After an intended change, regenerate them with

    QANAS_BLESS=1 .venv/bin/python -m pytest -m golden tests/compiler/test_golden_c.py

and review ``git diff tests/compiler/golden`` (tests/compiler/golden/README.md).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from compiler.driver import compile_model
from tests.support.golden_models import GOLDEN_MODELS

GOLDEN_DIR = Path(__file__).parent / "golden"
BLESS = os.environ.get("QANAS_BLESS") == "1"

pytestmark = pytest.mark.golden


def _emitted(project: Path) -> dict[str, str]:
    """Relative path → text of the files the golden files pin."""
    files = ["model.h", "model.c", "weights.c",
             *sorted(f"kernels/{p.name}" for p in (project / "kernels").glob("*.c"))]
    return {f: (project / f).read_text() for f in files}


def _golden(case: str) -> dict[str, str]:
    folder = GOLDEN_DIR / case
    return {str(p.relative_to(folder)): p.read_text()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _bless(case: str, emitted: dict[str, str]) -> None:
    folder = GOLDEN_DIR / case
    for stale in set(_golden(case)) - set(emitted):
        (folder / stale).unlink()
    for rel, text in emitted.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text)


@pytest.fixture(scope="module", params=sorted(GOLDEN_MODELS))
def emitted(request, tmp_path_factory):
    """(case, relative path → text) of the case's model compiled for the host."""
    out = tmp_path_factory.mktemp(request.param) / "project"
    compile_model(GOLDEN_MODELS[request.param](), "host", out)
    return request.param, out, _emitted(out)


def test_emitted_c_equals_the_golden_files(emitted):
    case, _, files = emitted
    if BLESS:
        _bless(case, files)
    golden = _golden(case)
    assert golden, (f"no golden files for {case!r}; create them with QANAS_BLESS=1 "
                    ".venv/bin/python -m pytest -m golden tests/compiler/test_golden_c.py")
    assert sorted(files) == sorted(golden), (
        f"{case}: emitted files {sorted(files)} differ from the golden {sorted(golden)}; "
        "if intended, re-bless (tests/compiler/golden/README.md)")
    for rel, text in files.items():
        assert text == golden[rel], (
            f"{case}/{rel} differs from tests/compiler/golden/{case}/{rel}; if the change is intended, "
            "re-bless with QANAS_BLESS=1 .venv/bin/python -m pytest -m golden "
            "tests/compiler/test_golden_c.py and review git diff tests/compiler/golden")


def test_emitted_c_holds_no_path_time_or_version(emitted):
    """What the golden files pin must not depend on where or when the compiler ran."""
    import tvm

    _, out, files = emitted
    forbidden = [str(out), str(Path.cwd()), str(Path.home()), str(GOLDEN_DIR.parent.parent),
                 f"{tvm.__version__}"]
    for rel, text in files.items():
        for needle in forbidden:
            assert needle not in text, f"{rel} holds {needle!r}, which varies between machines"
