"""Run-folder locks: a second process is refused with the holder's PID; a kill frees the lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from qanas.utils.io import OutputExistsError, prepare_output_dir
from qanas.utils.runlock import LOCK_NAME, RunLockedError, lock_run_dir

REPO = Path(__file__).resolve().parents[3]

HOLDER = textwrap.dedent(
    """
    import sys, time
    from qanas.utils.runlock import lock_run_dir
    lock = lock_run_dir(sys.argv[1], "train-supernet")
    print("locked", flush=True)
    time.sleep(600)
    """
)


def _holder(folder: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE,
                            env={**os.environ, "PYTHONPATH": str(REPO)}, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_second_process_is_refused_with_the_holders_pid_then_a_sigkill_frees_it(tmp_path):
    folder = tmp_path / "run"
    proc = _holder(folder)
    try:
        with pytest.raises(RunLockedError) as info:
            lock_run_dir(folder, "search")
        message = str(info.value)
        assert f"PID {proc.pid}" in message and "`qanas train-supernet` started 20" in message
        assert "another --out" in message and "\n" not in message
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # The lock file stays behind, stale; it must not block the next run.
    assert (folder / LOCK_NAME).exists()
    with lock_run_dir(folder, "search") as lock:
        assert lock.held and f'"pid": {os.getpid()}' in (folder / LOCK_NAME).read_text()
    assert not lock.held


def test_a_cli_run_on_a_folder_in_use_exits_2_naming_the_holder(tmp_path):
    folder = tmp_path / "run"
    proc = _holder(folder)
    try:
        env = {**os.environ, "PYTHONPATH": str(REPO), "QANAS_QUIET": "1"}
        done = subprocess.run([sys.executable, "-m", "qanas.cli.main", "train-supernet",
                               "--space", "squeezenas-small", "--out", str(folder)],
                              env=env, capture_output=True, text=True, timeout=300)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert done.returncode == 2, done.stderr
    assert f"PID {proc.pid}" in done.stderr and "Traceback" not in done.stderr
    assert sorted(p.name for p in folder.iterdir()) == [LOCK_NAME]


def test_release_lets_the_same_process_lock_again_and_lock_is_not_a_result(tmp_path):
    lock = lock_run_dir(tmp_path / "run", "demo")
    with pytest.raises(RunLockedError, match=f"PID {os.getpid()}"):
        lock_run_dir(tmp_path / "run", "demo")
    # The lock file does not count as earlier results of the folder...
    assert prepare_output_dir(tmp_path / "run", force=False) == tmp_path / "run"
    lock.release()
    (tmp_path / "run" / "results.json").write_text("{}")
    with pytest.raises(OutputExistsError):  # ...a result does
        prepare_output_dir(tmp_path / "run", force=False)
    lock_run_dir(tmp_path / "run", "demo").release()


def test_holder_text_unreadable_still_gives_a_clear_message(tmp_path):
    import fcntl

    folder = tmp_path / "run"
    folder.mkdir()
    fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # a holder that has not written its details yet
    try:
        with pytest.raises(RunLockedError, match="PID unknown"):
            lock_run_dir(folder, "search")
    finally:
        os.close(fd)
    lock_run_dir(folder, "search").release()
