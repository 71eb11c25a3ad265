"""The processes a test's child started, from /proc (Linux): to check that nothing of a killed run is left.

A process is identified by its pid and its start time (so a reused pid is not mistaken for it); a zombie (ended,
not yet reaped by its new parent) counts as ended."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Proc:
    pid: int
    start: int  # clock ticks after boot (/proc/<pid>/stat field 22)
    command: str


def _stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, start time) of `pid`, None if there is no such process."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields[0].decode(), int(fields[1]), int(fields[19])


def _command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def descendants(pid: int) -> list[Proc]:
    """The live processes below `pid` (children, their children, ...)."""
    stats = {int(e): s for e in os.listdir("/proc") if e.isdigit() and (s := _stat(int(e))) and s[0] != "Z"}
    found, frontier = [], {pid}
    while frontier:
        frontier = {p for p, (_, parent, _) in stats.items() if parent in frontier}
        found += [Proc(p, stats[p][2], _command(p)) for p in sorted(frontier)]
    return found


def running(procs: list[Proc]) -> list[Proc]:
    """Those of `procs` still running (not ended, not a zombie, not replaced by another process)."""
    return [p for p in procs if (stat := _stat(p.pid)) is not None and stat[0] != "Z" and stat[2] == p.start]


def wait_until_ended(procs: list[Proc], timeout: float) -> list[Proc]:
    """Wait up to `timeout` seconds for all of `procs` to end; those still running then."""
    deadline = time.time() + timeout
    while (left := running(procs)) and time.time() < deadline:
        time.sleep(0.1)
    return left


def kill(procs: list[Proc]) -> None:
    """SIGKILL those of `procs` still running (clean-up after a failed test)."""
    for p in running(procs):
        try:
            os.kill(p.pid, 9)
        except ProcessLookupError:
            pass
