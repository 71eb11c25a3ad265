"""One run per output folder: the lock between real processes, a lock left by a killed process, release; a
training run with data-loader workers killed by SIGKILL (its main process alone) leaves nothing behind and
is resumed at once."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from helpers import processes
from ugatit_paddle.formats import checkpoint
from ugatit_paddle.training.run_lock import LOCK_FILE, RunLock, RunLockedError, run_lock

HOLDER = textwrap.dedent("""
    import sys, time
    from ugatit_paddle.training.run_lock import run_lock
    with run_lock(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(120)
""")
FORKING_HOLDER = textwrap.dedent("""
    import os, sys, time
    from ugatit_paddle.training.run_lock import run_lock
    with run_lock(sys.argv[1]):
        child = os.fork()  # as a DataLoader worker is started
        if child == 0:
            time.sleep(120)
            os._exit(0)
        print("locked", child, flush=True)
        time.sleep(120)
""")
BARE_HOLDER = textwrap.dedent("""
    import fcntl, os, sys, time
    fd = os.open(sys.argv[1], os.O_RDWR)
    fcntl.lockf(fd, fcntl.LOCK_EX)
    print("locked", flush=True)
    time.sleep(120)
""")
FLOCK_FORKER = textwrap.dedent("""
    import fcntl, os, sys, time
    fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as earlier versions locked: shared with every forked child
    child = os.fork()
    if child == 0:
        time.sleep(120)
        os._exit(0)
    print("locked", child, flush=True)
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
        assert lock.info.pid == os.getpid()
        second = _try(tmp_path)  # another process reads the file: opening it here would drop our POSIX lock
        assert second.returncode == 2 and f"process {os.getpid()}" in second.stderr


def test_a_forked_child_does_not_hold_the_lock(tmp_path):
    """The lock belongs to the process that took it: after its SIGKILL, its still running child does not keep
    the folder locked."""
    holder = subprocess.Popen([sys.executable, "-c", FORKING_HOLDER, str(tmp_path)], stdout=subprocess.PIPE,
                              text=True)
    word, child = holder.stdout.readline().split()
    assert word == "locked"
    children = processes.descendants(holder.pid)
    try:
        assert [p.pid for p in children] == [int(child)]
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        third = _try(tmp_path)
        assert processes.running(children), "the child must still run for this test to mean anything"
        assert third.returncode == 0, third.stderr
        assert third.stdout.split() == ["acquired", str(holder.pid)]
    finally:
        processes.kill(children)


def test_refusal_names_the_live_holders_when_the_recorded_process_is_dead(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    lock_file = tmp_path / LOCK_FILE
    lock_file.write_text(json.dumps({"pid": pid, "hostname": "", "started": "then", "command": "train.py x"}))
    holder = subprocess.Popen([sys.executable, "-c", BARE_HOLDER, str(lock_file)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        refused = _try(tmp_path)
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert refused.returncode == 2
    message = refused.stderr
    assert f"output_dir '{tmp_path}' is locked by process {holder.pid} ({sys.executable} -c import fcntl" in message
    assert f"{lock_file})" in message  # the end of the holder's command line
    assert f"not by the run named in its lock file (process {pid}, started then (train.py x))" in message
    assert f"kill {holder.pid}" in message and f"kill {pid}" not in message


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


@pytest.mark.skipif(not Path("/proc/locks").exists(), reason="Linux only")
def test_holders_of_an_inherited_flock_are_the_processes_that_have_it_open(tmp_path):
    """/proc/locks names the dead process that took an `flock`; the holders found are those still holding it."""
    from ugatit_paddle.training.run_lock import _lock_holders

    lock_file = tmp_path / LOCK_FILE
    forker = subprocess.Popen([sys.executable, "-c", FLOCK_FORKER, str(lock_file)], stdout=subprocess.PIPE, text=True)
    word, child = forker.stdout.readline().split()
    children = processes.descendants(forker.pid)
    try:
        assert word == "locked"
        forker.send_signal(signal.SIGKILL)
        forker.wait(timeout=30)
        fd = os.open(lock_file, os.O_RDONLY)
        try:
            holders = _lock_holders(fd)
        finally:
            os.close(fd)
        assert [h.pid for h in holders] == [int(child)]
        assert holders[0].command.startswith(f"{sys.executable} -c import fcntl")
    finally:
        processes.kill(children)


WORKERS = ("-o", "data.num_workers=2", "-o", "train.save_every=1")  # 2 worker processes per domain


def test_two_train_runs_on_one_output_dir(tmp_path, data_root, small_train, wait_for):
    """tools/train.py with data-loader workers: the second run on a folder in use exits 2 at once naming the
    first run's main process, the first goes on undisturbed."""
    out = tmp_path / "run"
    first = subprocess.Popen(small_train(out, data_root, 200, *WORKERS), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    workers = []
    try:
        wait_for(out / "samples" / "A2B_0000001.png", first)
        workers = processes.descendants(first.pid)
        assert len(workers) >= 4
        second = subprocess.run(small_train(out, data_root, 200, *WORKERS), capture_output=True, text=True,
                                timeout=120)
        assert second.returncode == 2, second.stderr[-2000:]
        assert f"output_dir '{out}' is in use by another run: process {first.pid}" in second.stderr
        assert f"kill {first.pid}" in second.stderr
        assert first.poll() is None
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=120)
        processes.kill(processes.wait_until_ended(workers, 10))
    assert first.returncode == 0
    assert not (out / LOCK_FILE).exists()


def _weights(path: Path) -> dict[str, np.ndarray]:
    nets = checkpoint.load(path)["networks"]
    return {f"{n}.{k}": v for n, state in nets.items() for k, v in state.items()}


def test_sigkill_of_the_main_process_frees_the_folder_and_leaves_no_worker(tmp_path, data_root, small_train,
                                                                           wait_for):
    """`kill -9` of a training run's main process alone (as the out-of-memory killer does): its data-loader
    workers end within 10 s, `--resume` in the same folder is accepted at once and continues exactly."""
    n = 8
    straight = subprocess.Popen(small_train(tmp_path / "straight", data_root, n, *WORKERS),  # meanwhile
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    out = tmp_path / "killed"
    run = subprocess.Popen(small_train(out, data_root, n, *WORKERS), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    workers, resumed = [], None
    try:
        wait_for(checkpoint.checkpoint_path(out, 2), run)
        workers = processes.descendants(run.pid)
        assert len(workers) >= 4, workers  # 2 domains x 2 workers, else this test means nothing
        run.send_signal(signal.SIGKILL)
        run.communicate(timeout=30)
        killed = time.time()
        stopped_at = checkpoint.list_checkpoints(out)[-1][0]
        assert 2 <= stopped_at < n
        resumed = subprocess.Popen(small_train(out, data_root, n, *WORKERS) + ["--resume"], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
        assert time.time() - killed < 5
        left = processes.wait_until_ended(workers, 10 - (time.time() - killed))
        assert not left, f"still running 10 s after the kill: {left}"
        stdout, stderr = resumed.communicate(timeout=300)
        straight_err = straight.communicate(timeout=300)[1]
        assert straight.returncode == 0, straight_err[-2000:]
    finally:
        processes.kill(workers)
        for proc in (run, straight, resumed):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert resumed.returncode == 0, stderr[-2000:]  # not refused: the lock was free when it started
    assert f"took over the lock of process {run.pid}" in stdout + stderr
    assert "resumed from" in stdout and f"at iteration {stopped_at}" in stdout
    a = _weights(checkpoint.latest_checkpoint(tmp_path / "straight"))
    b = _weights(checkpoint.latest_checkpoint(out))
    assert checkpoint.list_checkpoints(out)[-1][0] == n
    assert max(float(np.abs(a[k] - b[k]).max()) for k in a) <= 1e-6  # as test_faults
