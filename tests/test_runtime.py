"""CPU runtime defaults (ugatit_paddle.runtime) and the AMP-needs-a-GPU refusal."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import paddle
import pytest

from ugatit_paddle import runtime
from ugatit_paddle.config import ConfigError
from ugatit_paddle.training.loop import Trainer
from ugatit_paddle.training.ugatit import AmpUnavailableError

ROOT = Path(__file__).resolve().parents[1]
ON_GPU = paddle.device.get_device().startswith("gpu")


def test_defaults_on_an_amd_glibc_machine():
    assert runtime.cpu_defaults({}, cores=8, vendor="AuthenticAMD") == {"OMP_NUM_THREADS": "8", "MKL_DEBUG_CPU_TYPE": "5"}
    assert runtime.allocator_defaults({}, on_cpu=True, glibc=True) == {
        "MALLOC_MMAP_THRESHOLD_": str(32 * 2**20), "MALLOC_MMAP_MAX_": "0", "MALLOC_TRIM_THRESHOLD_": str(2**30)}


def test_user_settings_win_and_intel_keeps_mkl_default():
    assert runtime.cpu_defaults({"OMP_NUM_THREADS": "3"}, cores=8, vendor="GenuineIntel") == {}
    assert runtime.cpu_defaults({}, cores=4, vendor="unknown") == {"OMP_NUM_THREADS": "4"}
    assert runtime.allocator_defaults({"MALLOC_TRIM_THRESHOLD_": "0"}, on_cpu=True, glibc=True) == {
        "MALLOC_MMAP_THRESHOLD_": str(32 * 2**20), "MALLOC_MMAP_MAX_": "0"}
    assert runtime.allocator_defaults({}, on_cpu=True, glibc=False) == {}


def test_allocator_settings_only_when_paddle_computes_on_the_cpu(monkeypatch):
    applied = []
    monkeypatch.setattr(runtime, "apply_malloc_settings", applied.append)
    monkeypatch.setattr(runtime, "uses_glibc", lambda: True)
    monkeypatch.setattr(runtime, "paddle_on_cpu", lambda: False)  # as on a GPU machine
    environ: dict[str, str] = {}
    assert runtime.configure_allocator(environ) == {} and environ == {}
    assert runtime.configure_allocator(environ, on_cpu=True) == runtime.GLIBC_MALLOC == environ
    assert applied == []  # mallopt only for this process's own environment
    monkeypatch.setattr(runtime, "paddle_on_cpu", lambda: True)
    for name in runtime.GLIBC_MALLOC:
        monkeypatch.setenv(name, "")  # records the value to restore
        monkeypatch.delenv(name)
    set_now = runtime.configure_allocator()
    assert set_now == runtime.GLIBC_MALLOC and applied == [set_now]
    assert all(os.environ[k] == v for k, v in set_now.items())


def test_threads_are_shared_by_the_processes_of_a_launch():
    assert runtime.cpu_defaults({"PADDLE_LOCAL_SIZE": "2"}, cores=8, vendor="x") == {"OMP_NUM_THREADS": "4"}
    assert runtime.cpu_defaults({"PADDLE_LOCAL_SIZE": "4"}, cores=2, vendor="x") == {"OMP_NUM_THREADS": "1"}


def test_configure_cpu_writes_only_the_given_mapping(monkeypatch):
    monkeypatch.setattr(runtime, "usable_cores", lambda: 2)
    environ = {"MKL_DEBUG_CPU_TYPE": "0"}
    assert "OMP_NUM_THREADS" in runtime.configure_cpu(environ, dry_run=True)
    assert environ == {"MKL_DEBUG_CPU_TYPE": "0"}  # dry run changes nothing
    set_now = runtime.configure_cpu(environ)
    assert environ["OMP_NUM_THREADS"] == "2" and environ["MKL_DEBUG_CPU_TYPE"] == "0"
    assert "MKL_DEBUG_CPU_TYPE" not in set_now


def test_cpu_vendor_reads_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\n")
    assert runtime.cpu_vendor(info) == "AuthenticAMD"
    assert runtime.cpu_vendor(tmp_path / "missing") is None


@pytest.mark.parametrize("way_in", ["train", "ugatit_paddle.commands.benchmark"])
def test_commands_configure_the_cpu_before_paddle_and_start_quietly(way_in):
    """Paddle sets OMP_NUM_THREADS=1 at import when it is unset, so finding this machine's core count there after
    the import proves the CPU set-up ran first; its OMP_NUM_THREADS notice is not printed."""
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS" and k not in runtime.GLIBC_MALLOC}
    env["PYTHONPATH"] = str(ROOT / "tools")  # "train": tools/train.py, found as `python tools/train.py` finds it
    code = f"import {way_in}\nimport os; print(os.environ['OMP_NUM_THREADS'], os.environ.get('MALLOC_MMAP_MAX_'))"
    run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120, cwd="/")
    assert run.returncode == 0, run.stderr
    threads, mmap_max = run.stdout.split()[-2:]
    assert threads == str(runtime.usable_cores())
    assert mmap_max == ("None" if ON_GPU or not runtime.uses_glibc() else "0")  # allocator settings on CPU only
    assert "OMP_NUM_THREADS" not in run.stderr and "ccache" not in run.stderr, run.stderr


@pytest.mark.skipif(ON_GPU, reason="AMP is available on this GPU machine")
def test_amp_on_cpu_is_refused(tmp_path, tiny_config):
    with pytest.raises(AmpUnavailableError, match="train.amp=true needs a GPU"):
        Trainer.from_dict(tiny_config(tmp_path, train={"amp": True}))
    assert issubclass(AmpUnavailableError, ConfigError)  # so train.py exits 2 (tests/test_loop.py)
