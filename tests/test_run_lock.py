"""One run per output folder: the lock between real processes, a lock left by a killed process, release."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from ugatit_paddle.training.run_lock import LOCK_FILE, RunLock, RunLockedError, run_lock

ROOT = Path(__file__).resolve().parents[1]
HOLDER = textwrap.dedent("""
    import sys, time
    from ugatit_paddle.training.run_lock import run_lock
    with run_lock(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(120)
""")
TRY = textwrap.dedent("""
    import sys
    from ugatit_paddle.training.run_lock import RunLockedError, run_lock
    try:
        with run_lock(sys.argv[1]) as lock:
            print("acquired", lock.stale.pid if lock.stale else None, flush=True)
    except RunLockedError as e:
        print(e, file=sys.stderr)
        sys.exit(2)
""")


def _holder(folder: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "locked"
    return proc


def _try(folder: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", TRY, str(folder)], capture_output=True, text=True, timeout=60)


def test_second_process_is_refused_naming_the_folder_and_the_holder(tmp_path):
    out = tmp_path / "run"
    holder = _holder(out)
    try:
        info = json.loads((out / LOCK_FILE).read_text())
        assert info["pid"] == holder.pid and info["hostname"] and info["started"]
        second = _try(out)
        assert second.returncode == 2
        assert f"output_dir '{out}' is in use by another run: process {holder.pid}" in second.stderr
        assert f"kill {holder.pid}" in second.stderr
        with pytest.raises(RunLockedError, match=str(holder.pid)):  # also within this process
            RunLock(out).acquire()
    finally:
        holder.terminate()
        holder.wait(timeout=30)
    # SIGTERM killed the holder without running its `with` exit: the file is left, the lock is not
    assert (out / LOCK_FILE).exists()
    third = _try(out)
    assert third.returncode == 0, third.stderr
    assert third.stdout.split() == ["acquired", str(holder.pid)]  # took over, reporting the dead owner
    assert not (out / LOCK_FILE).exists()  # released on exit


def test_lock_of_a_killed_process_is_taken_over(tmp_path):
    holder = _holder(tmp_path)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=30)
    with run_lock(tmp_path) as lock:
        assert lock.stale is not None and lock.stale.pid == holder.pid
        assert json.loads((tmp_path / LOCK_FILE).read_text())["pid"] == os.getpid()


def test_stale_lock_file_with_a_dead_pid(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    (tmp_path / LOCK_FILE).write_text(json.dumps({"pid": pid, "hostname": "h", "started": "then", "command": "x"}))
    with run_lock(tmp_path) as lock:
        assert lock.stale.pid == pid


def test_released_on_errors_and_reusable(tmp_path):
    with pytest.raises(ZeroDivisionError):
        with run_lock(tmp_path / "out"):
            1 / 0
    assert not (tmp_path / "out" / LOCK_FILE).exists()
    with run_lock(tmp_path / "out") as lock:
        assert lock.held and lock.stale is None
        with pytest.raises(RunLockedError):  # a second lock in the same process is refused too
            RunLock(tmp_path / "out").acquire()
    assert not lock.held


def test_two_train_runs_on_one_output_dir(tmp_path, data_root, small_train, wait_for):
    """tools/train.py: the second run on a folder in use exits 2 at once, the first goes on undisturbed."""
    out = tmp_path / "run"
    first = subprocess.Popen(small_train(out, data_root, 200), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        wait_for(out / "samples" / "A2B_0000001.png", first)
        second = subprocess.run(small_train(out, data_root, 200), capture_output=True, text=True, timeout=120)
        assert second.returncode == 2, second.stderr[-2000:]
        assert f"output_dir '{out}' is in use by another run: process {first.pid}" in second.stderr
        assert first.poll() is None
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=120)
    assert first.returncode == 0
    assert not (out / LOCK_FILE).exists()
