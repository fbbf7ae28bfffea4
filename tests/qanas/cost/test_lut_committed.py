"""The committed per-block latency tables (`targets/luts/`) and their exact-match lookup.

No QEMU: these tests read the measured files; `qanas lut build/validate` (the commands in
each file's protocol) regenerate them.
"""

from __future__ import annotations

import json
import math
import shutil

import pytest

from qanas.cost.lut.committed import (
    check_lut_matches,
    committed_luts,
    find_lut,
    lut_dir,
    lut_filename,
    validation_path,
)
from qanas.cost.lut.table import LUT_FORMAT, LatencyLUT, LUTLatencyModel, required_entries
from qanas.errors import ConfigError
from qanas.space import get_space
from qanas.utils.io import file_sha256
from targets import get_target

DEMO = ("squeezenas-small", "cortex-m7", (64, 128), 6)  # the demo's default setting


def _demo_table():
    """The committed demo table by its conventional name, whatever kernel generation it was
    measured with (`find_lut` only returns a table of the current generation)."""
    return lut_dir() / lut_filename(*DEMO)


def _demo_table_is_current() -> bool:
    from compiler.version import KERNEL_GENERATION

    protocol = json.loads(_demo_table().read_text())["protocol"]
    return int(protocol.get("kernel_generation", 1)) == KERNEL_GENERATION


needs_current_table = pytest.mark.skipif(
    not _demo_table_is_current(),
    reason="the committed demo table is of an older kernel generation than compiler/version.py; "
           "tests/qanas/cost/test_kernel_generation.py fails with the command that rebuilds it")
PROTOCOL_KEYS = {"target", "runner", "unit", "space", "image_size", "num_classes", "quant_spec",
                 "versions", "toolchain", "emulator", "built", "command", "method", "options",
                 "seed", "build_seconds", "context_reference"}


@needs_current_table
def test_the_demo_table_is_committed_under_its_conventional_name():
    path = find_lut(*DEMO)
    assert path == lut_dir() / lut_filename(*DEMO)
    assert path in committed_luts()
    # space and target objects are accepted too
    assert find_lut(get_space(DEMO[0]), get_target(DEMO[1]), DEMO[2], DEMO[3]) == path


@pytest.mark.parametrize("path", committed_luts(), ids=lambda p: p.name)
def test_committed_table_is_complete_and_self_describing(path):
    data = json.loads(path.read_text())
    assert data["format"] == LUT_FORMAT
    lut = LatencyLUT.load(path)
    assert path.name == lut_filename(lut.space, lut.protocol["target"], lut.image_size,
                                     lut.num_classes)
    assert PROTOCOL_KEYS <= set(lut.protocol)
    assert lut.protocol["image_size"] == list(lut.image_size) and lut.unit == lut.protocol["unit"]
    assert lut.protocol["command"].startswith("qanas lut build")
    space = get_space(lut.space)
    # every option of every superblock signature
    assert lut.missing(space) == []
    assert set(lut.entries) == set(required_entries(space, lut.image_size))
    assert all(v > 0 and math.isfinite(v) for v in lut.entries.values())
    assert lut.overhead is not None and abs(lut.overhead) < min(lut.entries.values())
    model = LUTLatencyModel(lut, space)
    lo, seed, hi = (model.predict(space.resolve(n)).value for n in ("min", "seed", "max"))
    assert all(math.isfinite(v) and v > 0 for v in (lo, seed, hi))
    assert lo < seed < hi
    # the fixed part agrees across references (the table is additive). Fused inverted
    # residuals measured alone differ a little from in context (generation 2: 7.0 % of the
    # fixed part, 0.6 % of a model); the held-out validation below is the real check.
    assert len(lut.fixed_info["references"]) >= 2 and lut.fixed_info["spread_pct"] < 10.0


@pytest.mark.parametrize("path", committed_luts(), ids=lambda p: p.name)
def test_committed_table_has_a_current_validation(path):
    report = json.loads(validation_path(path).read_text())
    # validated against this very file: a rebuilt table must be validated again
    assert report["protocol"]["lut_sha256"] == file_sha256(path)
    assert report["n"] >= 10 and len(report["rows"]) == report["n"]
    assert report["protocol"]["command"].startswith("qanas lut validate")
    references = {r["reference"] for r in LatencyLUT.load(path).fixed_info["references"]}
    assert not references & {r["arch"] for r in report["rows"]}
    assert report["within_10"] >= 0.95  # the goal of issue #5


@pytest.mark.parametrize("change", [{"image_size": (64, 64)}, {"image_size": (128, 64)},
                                    {"num_classes": 4}, {"target": "cortex-m4"},
                                    {"space": "squeezenas-large"}])
def test_find_lut_refuses_a_mismatch(change):
    want = dict(zip(("space", "target", "image_size", "num_classes"), DEMO, strict=True))
    want.update(change)
    assert find_lut(**want) is None
    lut = LatencyLUT.load(_demo_table())
    with pytest.raises(ConfigError, match="build a matching table"):
        check_lut_matches(lut, **want)


def test_find_lut_skips_unfinished_tables_and_reports(tmp_path):
    from compiler.version import KERNEL_GENERATION

    source = _demo_table()
    data = json.loads(source.read_text())
    data["protocol"]["kernel_generation"] = KERNEL_GENERATION
    (tmp_path / source.name).write_text(json.dumps({**data, "fixed": None}))
    shutil.copy(validation_path(source), tmp_path)
    assert find_lut(*DEMO, root=tmp_path) is None
    assert committed_luts(tmp_path) == [tmp_path / source.name]
    (tmp_path / source.name).write_text(json.dumps(data))
    assert find_lut(*DEMO, root=tmp_path) == tmp_path / source.name
    assert validation_path(tmp_path / "a.json").name == "a.validation.json"


def test_lut_build_defaults_to_the_committed_name_and_refuses_to_overwrite(capsys):
    from qanas.cli import main as cli

    space, target, (h, w), classes = DEMO
    code = cli.main(["lut", "build", "--space", space, "--target", target, "--json"])
    error = json.loads(capsys.readouterr().out)["error"]
    # the defaults are the demo's size and the synthetic set's classes: the committed file
    assert code != 0 and lut_filename(*DEMO) in error and "--resume" in error
    code = cli.main(["lut", "validate", "--json"])
    assert code == 2 and "--lut FILE" in json.loads(capsys.readouterr().out)["error"]


def _with_generation(tmp_path, generation: int):
    source = _demo_table()
    data = json.loads(source.read_text())
    data["protocol"]["kernel_generation"] = generation
    copy = tmp_path / source.name
    copy.write_text(json.dumps(data))
    return copy


def test_a_table_of_another_kernel_generation_is_not_used(tmp_path, monkeypatch, caplog):
    """Latencies measured on older kernels describe kernels that no longer exist."""
    from compiler.version import KERNEL_GENERATION
    from qanas.cost.lut import committed as lut_registry

    stale = _with_generation(tmp_path, KERNEL_GENERATION + 1)
    assert find_lut(*DEMO, root=tmp_path) is None
    assert lut_registry.stale_luts(*DEMO, root=tmp_path) == [stale]
    with pytest.raises(ConfigError, match="kernel generation.*qanas lut build --space "
                                          "squeezenas-small --target cortex-m7"):
        lut_registry.latency_lut_model(get_space(DEMO[0]), DEMO[1], DEMO[2], DEMO[3], stale)
    monkeypatch.setattr(lut_registry, "lut_dir", lambda: tmp_path)
    with caplog.at_level("WARNING"):
        assert lut_registry.latency_lut_model(get_space(DEMO[0]), *DEMO[1:]) == (None, None)
    assert "older kernels" in caplog.text and "qanas lut build" in caplog.text


def test_a_table_is_used_only_for_the_mode_it_measured(tmp_path, monkeypatch, caplog):
    """Tables measure ``--optimise speed`` builds; a ``size`` build runs a patch stage."""
    from compiler.version import KERNEL_GENERATION
    from qanas.cost.lut import committed as lut_registry

    current = _with_generation(tmp_path, KERNEL_GENERATION)
    assert LatencyLUT.load(current).protocol["optimise"] == lut_registry.TABLE_OPTIMISE == "speed"
    assert find_lut(*DEMO, root=tmp_path, optimise="size") is None
    assert lut_registry.other_mode_luts(*DEMO, "size", root=tmp_path) == [current]
    with pytest.raises(ConfigError, match="measures --optimise speed builds.*--optimise size"):
        check_lut_matches(LatencyLUT.load(current), *DEMO, optimise="size")
    monkeypatch.setattr(lut_registry, "lut_dir", lambda: tmp_path)
    with caplog.at_level("WARNING"):
        assert lut_registry.latency_lut_model(get_space(DEMO[0]), *DEMO[1:],
                                              optimise="size") == (None, None)
    assert "not used for --optimise size" in caplog.text
    model, path = lut_registry.latency_lut_model(get_space(DEMO[0]), *DEMO[1:], optimise="speed")
    assert path == current and model is not None


def test_a_table_of_the_current_generation_is_found(tmp_path):
    from compiler.version import KERNEL_GENERATION

    current = _with_generation(tmp_path, KERNEL_GENERATION)
    assert find_lut(*DEMO, root=tmp_path) == current
