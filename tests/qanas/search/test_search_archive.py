"""EvalArchive: round trip, keys, and survival of a SIGKILL in the middle of a run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from qanas.search.archive import ArchiveError, EvalArchive, EvalRecord, metric_set_key

REPO = Path(__file__).resolve().parents[3]


def _record(arch: str, target: str = "host", metric_set: str = "m1", miou: float = 0.5) -> EvalRecord:
    return EvalRecord(arch=arch, target=target, metric_set=metric_set, miou=miou,
                      miou_fp32=miou + 0.01, macs=1000, params=10, flash_bytes=50,
                      sram_bytes=4096, latency=123.0, latency_unit="cycles",
                      latency_source="analytic:test", checkpoint_sha256="ab" * 32, seed=3,
                      versions={"torch": "x"}, extra={"pixel_acc": 0.9})


def test_put_get_roundtrip_and_keys(tmp_path):
    with EvalArchive(tmp_path / "a.sqlite") as archive:
        stored = archive.put(_record("s:a"))
        assert stored.timestamp > 0
        assert archive.get("s:a", "host", "m1") == stored
        assert archive.get("s:a", "host", "other") is None
        assert archive.get("s:a", "cortex-m7", "m1") is None
        archive.put(_record("s:a", target="cortex-m7"))
        archive.put(_record("s:a", miou=0.7))  # same key: replaced, not duplicated
        assert len(archive) == 2
        assert archive.get("s:a", "host", "m1").miou == pytest.approx(0.7)
        assert [r.target for r in archive.all("cortex-m7")] == ["cortex-m7"]
        assert archive.integrity_check() == "ok"
    with EvalArchive(tmp_path / "a.sqlite") as again:  # persisted
        assert len(again) == 2


def test_metric_set_key_is_order_independent_and_distinguishing():
    assert metric_set_key(a=1, b=[2, 3]) == metric_set_key(b=[2, 3], a=1)
    assert metric_set_key(a=1) != metric_set_key(a=2)


def test_unknown_keys_and_non_json_extra_are_rejected(tmp_path):
    with pytest.raises(ArchiveError, match="unknown EvalRecord keys"):
        EvalRecord.from_dict({**_record("s:a").to_dict(), "bogus": 1})
    bad = EvalRecord(**{**_record("s:a").to_dict(), "extra": {"x": object()}})
    with EvalArchive(tmp_path / "a.sqlite") as archive, pytest.raises(ArchiveError, match="JSON"):
        archive.put(bad)


def test_not_a_database_is_a_clear_error(tmp_path):
    path = tmp_path / "a.sqlite"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ArchiveError, match="not a usable qanas archive"):
        EvalArchive(path)


WORKER = textwrap.dedent(
    """
    import sys, time
    from qanas.search.archive import EvalArchive, EvalRecord
    db, log, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    archive = EvalArchive(db)
    with open(log, "a") as f:
        for i in range(n):
            arch = f"s:a{i:03d}"
            if archive.get(arch, "host", "m1") is not None:
                continue
            f.write(arch + "\\n"); f.flush()          # an evaluation starts
            time.sleep(0.01)                          # the "scoring"
            archive.put(EvalRecord(arch=arch, target="host", metric_set="m1", miou=i / n,
                                   miou_fp32=i / n, macs=i, params=i, flash_bytes=i,
                                   sram_bytes=i, latency=float(i), latency_unit="cycles",
                                   latency_source="analytic:test", extra={"pad": "x" * 2000}))
    """
)


def test_sigkill_mid_run_then_resume(tmp_path):
    db, n = tmp_path / "archive.sqlite", 60
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    first_log, second_log = tmp_path / "run1.log", tmp_path / "run2.log"
    proc = subprocess.Popen([sys.executable, "-c", WORKER, str(db), str(first_log), str(n)],
                            env=env)
    deadline = time.time() + 60
    while time.time() < deadline:
        if first_log.exists() and len(first_log.read_text().split()) >= 10:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL

    with EvalArchive(db) as archive:
        assert archive.integrity_check() == "ok"
        finished = {r.arch for r in archive.all("host", "m1")}
        assert 0 < len(finished) < n, "the kill must land mid-run"
        for r in archive.all():
            assert r.extra == {"pad": "x" * 2000}  # rows are whole, never torn

    subprocess.run([sys.executable, "-c", WORKER, str(db), str(second_log), str(n)], env=env,
                   check=True, timeout=120)
    resumed = second_log.read_text().split()
    assert not finished & set(resumed), "finished subnets were evaluated again"
    assert len(resumed) == len(set(resumed)) == n - len(finished)
    with EvalArchive(db) as archive:
        assert archive.integrity_check() == "ok"
        assert len(archive) == n
        assert sorted(r.arch for r in archive.all()) == [f"s:a{i:03d}" for i in range(n)]


COMMITTER = textwrap.dedent(
    """
    import sys, time
    from qanas.search.archive import EvalArchive, EvalRecord
    db, log, journal = sys.argv[1], sys.argv[2], sys.argv[3]
    archive = EvalArchive(db, journal=journal)
    with open(log, "a") as f:
        for i in range(1000):
            archive.put(EvalRecord(arch=f"s:a{i:03d}", target="host", metric_set="m1",
                                   miou=0.5, miou_fp32=0.5, macs=i, params=i, flash_bytes=i,
                                   sram_bytes=i, latency=float(i), latency_unit="cycles",
                                   latency_source="analytic:test"))
            f.write(f"s:a{i:03d}\\n"); f.flush()     # committed
            time.sleep(0.3)                          # the next "scoring"
    """
)


@pytest.mark.parametrize("journal", ["delete", "wal"])
def test_main_file_alone_holds_every_committed_row_after_sigkill(tmp_path, journal):
    import shutil

    db, log = tmp_path / "run" / "archive.sqlite", tmp_path / "committed.log"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-c", COMMITTER, str(db), str(log), journal],
                            env=env)
    deadline = time.time() + 60
    while time.time() < deadline and not (log.exists() and len(log.read_text().split()) >= 3):
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)  # lands in the sleep after a commit
    proc.wait()
    committed = log.read_text().split()
    assert len(committed) >= 3
    copy = tmp_path / "copy" / "archive.sqlite"
    copy.parent.mkdir()
    shutil.copy2(db, copy)  # what a user copies: the archive file, not -wal/-journal
    with EvalArchive(copy, journal=journal) as archive:
        assert archive.integrity_check() == "ok"
        assert {r.arch for r in archive.all("host", "m1")} >= set(committed)


def test_an_archive_left_in_wal_mode_is_folded_into_the_main_file(tmp_path):
    import sqlite3

    db = tmp_path / "archive.sqlite"
    with EvalArchive(db, journal="wal") as archive:
        archive.put(_record("s:a"))
    # An older qanas killed mid-run: the row only in archive.sqlite-wal.
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("INSERT INTO evals SELECT 's:b', target, metric_set, miou, miou_fp32, macs, "
                 "params, flash_bytes, sram_bytes, latency, latency_unit, latency_source, "
                 "checkpoint_sha256, seed, versions, extra, timestamp FROM evals")
    import shutil

    killed = tmp_path / "killed"
    killed.mkdir()
    for suffix in ("", "-wal"):  # the files as a SIGKILL leaves them, the WAL not empty
        shutil.copy2(str(db) + suffix, str(killed / "archive.sqlite") + suffix)
    conn.close()
    assert (killed / "archive.sqlite-wal").stat().st_size > 0
    with EvalArchive(killed / "archive.sqlite") as archive:
        assert archive.journal == "delete" and len(archive) == 2
    assert not (killed / "archive.sqlite-wal").exists()
    with EvalArchive(killed / "archive.sqlite") as archive:
        assert len(archive) == 2


def test_unknown_journal_is_refused(tmp_path):
    with pytest.raises(ArchiveError, match="delete, wal"):
        EvalArchive(tmp_path / "a.sqlite", journal="memory")
