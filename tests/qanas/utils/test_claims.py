"""`qanas.utils.claims`: marker-file claims shared by processes, stale claims taken over."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

from qanas.utils.claims import (
    CLAIM_NAME,
    claim_owner,
    is_claimed_by_live_process,
    release,
    try_claim,
)


def _write_claim(folder, pid: int, host: str | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / CLAIM_NAME).write_text(json.dumps({"host": host or socket.gethostname(),
                                                 "pid": pid}))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_claim_is_exclusive_and_reentrant(tmp_path):
    job = tmp_path / "job"
    assert try_claim(job)
    assert claim_owner(job) == {"host": socket.gethostname(), "pid": os.getpid()}
    assert try_claim(job)  # this process already holds it
    assert is_claimed_by_live_process(job)
    release(job)
    assert not (job / CLAIM_NAME).exists() and not is_claimed_by_live_process(job)


def test_live_claim_of_another_process_is_respected(tmp_path):
    job = tmp_path / "job"
    _write_claim(job, os.getppid())  # the test runner's parent: alive, not us
    assert is_claimed_by_live_process(job)
    assert not try_claim(job)
    release(job)  # not ours: left alone
    assert claim_owner(job)["pid"] == os.getppid()


def test_stale_claim_is_taken_over(tmp_path):
    job = tmp_path / "job"
    _write_claim(job, _dead_pid())
    assert not is_claimed_by_live_process(job)
    assert try_claim(job)
    assert claim_owner(job)["pid"] == os.getpid()


def test_claim_from_another_host_counts_as_live(tmp_path):
    job = tmp_path / "job"
    _write_claim(job, _dead_pid(), host=socket.gethostname() + "-elsewhere")
    assert is_claimed_by_live_process(job) and not try_claim(job)
