"""Atomic writes: the file appears whole, with ordinary permissions, and a failed write
leaves the previous version and no temporary file behind."""

from __future__ import annotations

import json
import os

import pytest

from qanas.utils.io import atomic_write, atomic_write_json


def test_atomic_write_json_has_umask_permissions(tmp_path):
    mask = os.umask(0o022)
    try:
        path = atomic_write_json(tmp_path / "r.json", {"a": 1})
    finally:
        os.umask(mask)
    assert json.loads(path.read_text()) == {"a": 1}
    assert path.stat().st_mode & 0o777 == 0o644


def test_failed_write_keeps_the_old_file_and_no_temporary(tmp_path):
    path = atomic_write_json(tmp_path / "r.json", {"v": 1})

    def broken(f):
        f.write(b"{partial")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, broken)
    assert json.loads(path.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["r.json"]
