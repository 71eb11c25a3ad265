"""DataLoader worker processes end when the process that started them ends, however it ends.

Paddle's workers watch their parent only between batches and then wait for their queues to drain, so after
a SIGKILL of the training process (`kill -9`, the out-of-memory killer, a notebook kernel that dies) they
stay alive, re-parented to init. `end_with_parent(parent_pid)`, called first in each worker (the loaders'
`worker_init_fn`), makes the worker end with its parent:

- Linux: the kernel sends the worker SIGKILL when the parent ends (`prctl(PR_SET_PDEATHSIG)`); a parent that
  ended before that call is seen by `os.getppid()` no longer being `parent_pid`, and the worker ends at once.
  (Strictly, the signal comes when the *thread* that started the worker ends; the loaders are iterated by the
  thread that creates their iterators, which outlives them.)
- other POSIX systems: a daemon thread checks `os.getppid()` every `POLL_SECONDS` and ends the worker.
- Windows: nothing (workers are spawned there; Paddle's own parent check applies).
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
POLL_SECONDS = 1.0


def _die() -> None:
    """End this process at once, as the kernel's parent-death signal would (no clean-up in a worker)."""
    os.kill(os.getpid(), signal.SIGKILL)


def _watch_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(POLL_SECONDS)
    _die()


def end_with_parent(parent_pid: int) -> None:
    """Make this process end when process `parent_pid`, its parent, ends (see the module docstring)."""
    if os.name == "nt":
        return
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0:
            if os.getppid() != parent_pid:  # the parent ended before the prctl: no signal will come
                _die()
            return
    if os.getppid() != parent_pid:
        _die()
    threading.Thread(target=_watch_parent, args=(parent_pid,), name="end-with-parent", daemon=True).start()
