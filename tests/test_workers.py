"""Worker processes end with their parent: after a SIGKILL of the parent alone, and when the parent ended before
the worker asked (the race). The Linux parent-death signal, and the polling thread other systems use."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers import processes

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")

# the module by its path: importing the package would import paddle, which takes seconds
IMPORT = ("import importlib.util; spec = importlib.util.spec_from_file_location('workers', {path!r}); "
          "workers = importlib.util.module_from_spec(spec); spec.loader.exec_module(workers)").format(
              path=str(ROOT / "ugatit_paddle" / "data" / "workers.py"))
PARENT = textwrap.dedent("""
    import os, sys, time
    {import_}
    end_with_parent = workers.end_with_parent
    sys.platform = sys.argv[1]  # "linux": prctl; anything else: the polling thread
    parent = os.getpid()
    child = os.fork()  # as a DataLoader worker is started
    if child == 0:
        end_with_parent(parent)
        print("ready", os.getpid(), flush=True)
        time.sleep(120)
        os._exit(0)
    time.sleep(120)
""").format(import_=IMPORT)


@pytest.mark.parametrize("platform", ["linux", "darwin"])
def test_worker_ends_when_its_parent_is_killed(platform):
    parent = subprocess.Popen([sys.executable, "-c", PARENT, platform], stdout=subprocess.PIPE, text=True)
    word, pid = parent.stdout.readline().split()
    assert word == "ready"
    worker = processes.descendants(parent.pid)
    try:
        assert [p.pid for p in worker] == [int(pid)]
        parent.send_signal(signal.SIGKILL)  # the parent alone
        parent.wait(timeout=30)
        assert not processes.wait_until_ended(worker, 5)
    finally:
        processes.kill(worker)


def test_worker_whose_parent_already_ended_ends_at_once():
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    code = f"{IMPORT}\nworkers.end_with_parent({int(dead.stdout)})\nprint('still running')"
    late = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert late.returncode == -signal.SIGKILL and "still running" not in late.stdout
