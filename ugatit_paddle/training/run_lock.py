"""One training run per output folder: a lock file taken at start and released at exit.

    with run_lock(cfg.output_dir) as lock:      # RunLockedError if another live process holds it
        if lock.stale is not None:
            print(f"took over the lock left by process {lock.stale.pid} (no longer running)")
        ...train...

The lock is `<output_dir>/.run.lock`, holding the owner's pid, host name, start time and command line (JSON)
for the error message. It is a POSIX record lock (`fcntl.lockf`; `msvcrt.locking` on Windows), which belongs
to the process that took it alone: processes it forks (DataLoader workers) do not hold it, and the operating
system drops it when that process ends in any way (exit, exception, signal, SIGKILL, out-of-memory kill). A
lock file left by a killed process is therefore not locked any more: the next run takes it over at once and
reports it in `stale`.

POSIX locks are per process, so two locks of one process never exclude each other, and closing any
descriptor of the file drops the process's lock. This module therefore remembers the lock files this process
holds (`_HELD`): a second `RunLock` of a folder this process holds is refused without opening the file. Do
not open a held lock file in the holding process by other means (read it from another process).

When the lock is held but the process named in the file is not the one holding it (on Linux the holders are
found in /proc), the error names the processes that do hold it, with their command lines.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import socket
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None
    import msvcrt

LOCK_FILE = ".run.lock"
_MAX_INFO_BYTES = 65536  # the lock file's JSON is read up to this size


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


@dataclass(frozen=True)
class LockHolder:
    """A live process of this machine holding the lock: its pid and command line."""

    pid: int
    command: str

    def describe(self) -> str:
        return f"process {self.pid}" + (f" ({self.command})" if self.command else "")


class RunLockedError(RuntimeError):
    """The output folder is locked by another live process; the message names the folder and the processes.

    `holder`: what the lock file says. `holders`: the processes found holding the lock (Linux), None when
    they cannot be looked up. The message names `holder` when it is one of them (or when nothing better is
    known), else the processes that do hold the lock."""

    def __init__(self, output_dir: Path, holder: LockInfo, holders: list[LockHolder] | None = None) -> None:
        self.output_dir, self.holder, self.holders = output_dir, holder, holders
        super().__init__(_refusal(output_dir, holder, holders))


def _refusal(output_dir: Path, holder: LockInfo, holders: list[LockHolder] | None) -> str:
    """The message of RunLockedError: only live processes are offered for killing."""
    other = "or choose another output_dir (-o output_dir=...)"
    local = holder.hostname in ("", socket.gethostname())
    if holders:
        pids = " ".join(str(h.pid) for h in holders)
        if holder.pid is None:  # the file names nobody (e.g. still being written): the holders are the run
            return (f"output_dir '{output_dir}' is in use by another run: {', '.join(h.describe() for h in holders)}"
                    f"; wait for it to finish, stop it (kill {pids}), {other}")
        if not (local and any(h.pid == holder.pid for h in holders)):
            return (f"output_dir '{output_dir}' is locked by {', '.join(h.describe() for h in holders)}, not by the "
                    f"run named in its lock file ({holder.describe()}), which no longer holds it; stop them (kill "
                    f"{pids}) if they are left over from that run, {other}")
    elif holder.pid is not None and local and not _alive(holder.pid):
        return (f"output_dir '{output_dir}' is locked by a process that could not be identified; the run named in "
                f"its lock file ({holder.describe()}) is no longer running: stop any process left over from it, "
                f"{other}")
    stop = f"stop it (kill {holder.pid}), " if holder.pid is not None else ""
    return (f"output_dir '{output_dir}' is in use by another run: {holder.describe()}; wait for it to finish, "
            f"{stop}{other}")


def _alive(pid: int) -> bool:
    """Whether process `pid` of this machine is running (assumed true where that cannot be asked safely)."""
    if os.name == "nt":  # os.kill would terminate it
        return True
    with contextlib.suppress(OSError, IndexError), open(f"/proc/{pid}/stat", "rb") as f:
        return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"  # a zombie: dead, not yet reaped
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process
        return True
    return True


def _command_line(pid: int, limit: int = 300) -> str:
    """The command line of process `pid` from /proc on one line, cut at `limit` characters ('' if unreadable)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            text = " ".join(f.read(4096).replace(b"\0", b" ").decode(errors="replace").split())
    except OSError:
        return ""
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _lock_holders(fd: int) -> list[LockHolder] | None:
    """The live processes holding a lock on the file open as `fd` (Linux, from /proc); None elsewhere.

    /proc/locks names the owner of a POSIX lock exactly. An `flock` (or open-file-description) lock belongs to
    an open file shared by every process that inherited it, and /proc/locks names only the process that took
    it, which may be dead: then every other process with the file open is listed."""
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as f:
            table = f.read()
    except OSError:
        return None
    st = os.fstat(fd)
    pids: set[int] = set()
    shared = False
    for line in table.splitlines():
        fields = line.split()
        if len(fields) < 6 or "->" in fields:  # "->": a process waiting for the lock
            continue
        try:
            major, minor, inode = fields[5].split(":")
            same = (int(major, 16), int(minor, 16), int(inode)) == (os.major(st.st_dev), os.minor(st.st_dev),
                                                                     st.st_ino)
            pid = int(fields[4])
        except ValueError:
            continue
        if not same:
            continue
        if fields[1] == "POSIX":
            pids.add(pid)
        else:
            shared = True
    if shared:
        pids.update(_processes_with_open(st))
    pids.discard(os.getpid())
    return [LockHolder(pid, _command_line(pid)) for pid in sorted(pids) if os.path.exists(f"/proc/{pid}")]


def _processes_with_open(st: os.stat_result) -> set[int]:
    """The pids of the processes (that we may inspect) with a descriptor on the file of `st`."""
    found = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{entry}/fd"):
                with contextlib.suppress(OSError):
                    if os.path.samestat(os.stat(f"/proc/{entry}/fd/{fd}"), st):
                        found.add(int(entry))
                        break
    return found


def _read_info(fd: int) -> LockInfo:
    """The lock file's contents, read through `fd` (opening the file again would drop this process's POSIX
    lock on it); fields left empty when unreadable (e.g. still being written, or locked on Windows)."""
    try:
        if hasattr(os, "pread"):
            raw = os.pread(fd, _MAX_INFO_BYTES, 0)
        else:
            os.lseek(fd, 0, os.SEEK_SET)
            raw = os.read(fd, _MAX_INFO_BYTES)
        data = json.loads(raw.decode("utf-8"))
        if not isinstance(data, dict):
            raise ValueError
    except (OSError, ValueError):
        data = {}
    pid = data.get("pid")
    return LockInfo(pid if isinstance(pid, int) else None, str(data.get("hostname", "")),
                    str(data.get("started", "")), str(data.get("command", "")))


def _try_lock(fd: int) -> bool:
    """Take the exclusive lock on `fd` without waiting; False if another process holds it."""
    try:
        if fcntl is not None:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the whole file, owned by this process only
        else:
            os.lseek(fd, 0, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
    except OSError:
        return False
    return True


def _file_id(st: os.stat_result) -> tuple[int, int]:
    return st.st_dev, st.st_ino


_HELD: dict[tuple[int, int], RunLock] = {}  # the lock files this process holds, by device and inode
_HELD_GUARD = threading.Lock()


class RunLock:
    """The lock of one output folder; `acquire()` / `release()`, or use it (or `run_lock`) in `with`."""

    def __init__(self, output_dir: str | os.PathLike[str]) -> None:
        self.output_dir = Path(output_dir)
        self.path = self.output_dir / LOCK_FILE
        self.stale: LockInfo | None = None  # the previous owner when a lock left by a dead process was taken over
        self.info: LockInfo | None = None  # what this lock wrote into the file while held
        self._fd: int | None = None
        self._owner_pid: int | None = None  # the process that took the lock (a forked child does not hold it)

    @property
    def held(self) -> bool:
        return self._fd is not None and self._owner_pid == os.getpid()

    def acquire(self) -> "RunLock":
        """Take the lock (creating the folder) or raise RunLockedError naming the live holder."""
        if self.held:
            return self
        self.output_dir.mkdir(parents=True, exist_ok=True)
        with _HELD_GUARD:
            while True:
                self._refuse_if_held_here()
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
                if not _try_lock(fd):
                    try:
                        info, holders = _read_info(fd), _lock_holders(fd)
                    finally:
                        os.close(fd)  # this process holds no lock on the file: closing drops nothing
                    raise RunLockedError(self.output_dir, info, holders)
                # The holder before us may have deleted the file between our open and our lock: then we hold the
                # lock of a file nobody else can see. Start over until the locked file is the one on disk.
                try:
                    same = os.path.samestat(os.fstat(fd), os.stat(self.path))
                except FileNotFoundError:
                    same = False
                if same:
                    break
                os.close(fd)
            previous = _read_info(fd)
            self.stale = previous if previous.pid is not None else None
            self.info = LockInfo(os.getpid(), socket.gethostname(),
                                 datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                                 " ".join(sys.argv))
            data = (json.dumps({"pid": self.info.pid, "hostname": self.info.hostname, "started": self.info.started,
                                "command": self.info.command}) + "\n").encode()
            os.ftruncate(fd, 0)
            if hasattr(os, "pwrite"):
                os.pwrite(fd, data, 0)
            else:
                os.lseek(fd, 0, os.SEEK_SET)
                os.write(fd, data)
            os.fsync(fd)
            self._fd, self._owner_pid = fd, os.getpid()
            _HELD[_file_id(os.fstat(fd))] = self
        return self

    def _refuse_if_held_here(self) -> None:
        """RunLockedError if this process already holds the lock file (checked without opening it)."""
        try:
            other = _HELD.get(_file_id(os.stat(self.path)))
        except FileNotFoundError:
            return
        if other is not None and other.held:
            raise RunLockedError(self.output_dir, other.info, [LockHolder(os.getpid(), " ".join(sys.argv))])

    def release(self) -> None:
        """Delete the lock file and drop the lock (nothing if not held; in a forked child of the holder, only
        the inherited descriptor is closed)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        if self._owner_pid != os.getpid():
            os.close(fd)
            return
        with _HELD_GUARD:
            with contextlib.suppress(OSError):
                _HELD.pop(_file_id(os.fstat(fd)), None)
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
