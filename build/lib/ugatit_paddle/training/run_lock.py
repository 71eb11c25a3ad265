"""One training run per output folder: a lock file taken at start and released at exit.

    with run_lock(cfg.output_dir) as lock:      # RunLockedError if another live process holds it
        if lock.stale is not None:
            print(f"took over the lock left by process {lock.stale.pid} (no longer running)")
        ...train...

The lock is `<output_dir>/.run.lock`, held with an exclusive `flock` (`msvcrt.locking` on Windows) and
holding the owner's pid, host name, start time and command line (JSON) for the error message. The operating
system drops the lock when its process ends in any way (exit, exception, signal, SIGKILL), so a lock file
left by a killed process is not locked any more: the next run takes it over and reports it in `stale`.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt

LOCK_FILE = ".run.lock"


@dataclass(frozen=True)
class LockInfo:
    """Who holds (or held) a lock: what the lock file says."""

    pid: int | None
    hostname: str
    started: str  # ISO 8601, UTC
    command: str

    def describe(self) -> str:
        who = f"process {self.pid}" if self.pid is not None else "an unknown process"
        host = f" on host '{self.hostname}'" if self.hostname else ""
        since = f", started {self.started}" if self.started else ""
        command = f" ({self.command})" if self.command else ""
        return f"{who}{host}{since}{command}"


class RunLockedError(RuntimeError):
    """The output folder is in use by another live run; the message names the folder and the process."""

    def __init__(self, output_dir: Path, holder: LockInfo) -> None:
        self.output_dir, self.holder = output_dir, holder
        stop = f"stop it (kill {holder.pid}), " if holder.pid is not None else ""
        super().__init__(f"output_dir '{output_dir}' is in use by another run: {holder.describe()}; wait for it "
                         f"to finish, {stop}or choose another output_dir (-o output_dir=...)")


def _read_info(path: Path) -> LockInfo:
    """The lock file's contents; fields left empty when the file is unreadable (e.g. still being written)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(data, dict):
            raise ValueError
    except (OSError, ValueError):
        data = {}
    pid = data.get("pid")
    return LockInfo(pid if isinstance(pid, int) else None, str(data.get("hostname", "")),
                    str(data.get("started", "")), str(data.get("command", "")))


def _try_lock(fd: int) -> bool:
    """Take the exclusive lock on `fd` without waiting; False if another open file holds it."""
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        else:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError:
        return False
    return True


class RunLock:
    """The lock of one output folder; `acquire()` / `release()`, or use it (or `run_lock`) in `with`."""

    def __init__(self, output_dir: str | os.PathLike[str]) -> None:
        self.output_dir = Path(output_dir)
        self.path = self.output_dir / LOCK_FILE
        self.stale: LockInfo | None = None  # the previous owner when a lock left by a dead process was taken over
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> "RunLock":
        """Take the lock (creating the folder) or raise RunLockedError naming the live holder."""
        if self._fd is not None:
            return self
        self.output_dir.mkdir(parents=True, exist_ok=True)
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            if not _try_lock(fd):
                os.close(fd)
                raise RunLockedError(self.output_dir, _read_info(self.path))
            # The holder before us may have deleted the file between our open and our lock: then we hold the
            # lock of a file nobody else can see. Start over until the locked file is the one on disk.
            try:
                same = os.path.samestat(os.fstat(fd), os.stat(self.path))
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)
        previous = _read_info(self.path)
        self.stale = previous if previous.pid is not None else None
        info = {"pid": os.getpid(), "hostname": socket.gethostname(),
                "started": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "command": " ".join(sys.argv)}
        data = (json.dumps(info) + "\n").encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0) if hasattr(os, "pwrite") else (os.lseek(fd, 0, os.SEEK_SET), os.write(fd, data))
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        """Delete the lock file and drop the lock (nothing if not held)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            self.path.unlink()  # before unlocking, so nobody locks a file that is about to vanish unseen
        os.close(fd)  # closing drops the lock

    def __enter__(self) -> "RunLock":
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


@contextlib.contextmanager
def run_lock(output_dir: str | os.PathLike[str]) -> Iterator[RunLock]:
    """Hold the lock of `output_dir` for the `with` block (see the module docstring)."""
    with RunLock(output_dir) as lock:
        yield lock
