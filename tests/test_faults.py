"""Faults and interruptions: signals, killed writes, bad data folders, foreign checkpoints."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from ugatit_paddle.formats import checkpoint

ROOT = Path(__file__).resolve().parents[1]
def _weights(path: Path) -> dict[str, np.ndarray]:
    nets = checkpoint.load(path)["networks"]
    return {f"{n}.{k}": v for n, state in nets.items() for k, v in state.items()}


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 0)])
def test_signal_saves_a_checkpoint_and_resume_is_exact(tmp_path, data_root, sig, code, small_train, wait_for):
    straight = subprocess.run(small_train(tmp_path / "straight", data_root, 4), capture_output=True, text=True)
    assert straight.returncode == 0, straight.stderr[-2000:]

    out = tmp_path / "interrupted"
    proc = subprocess.Popen(small_train(out, data_root, 4), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_for(out / "samples" / "A2B_0000001.png", proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-2000:]
    assert f"{sig.name} received: saving a checkpoint" in err
    stopped_at = checkpoint.list_checkpoints(out)[-1][0]
    assert 1 <= stopped_at < 4

    resumed = subprocess.run(small_train(out, data_root, 4) + ["--resume"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resumed from" in resumed.stdout and f"at iteration {stopped_at}" in resumed.stdout
    a = _weights(checkpoint.latest_checkpoint(tmp_path / "straight"))
    b = _weights(checkpoint.latest_checkpoint(out))
    assert max(float(np.abs(a[k] - b[k]).max()) for k in a) <= 1e-6


KILLED_WRITER = """
import sys, numpy as np
from ugatit_paddle.formats import checkpoint
payload = {{"format": "ugatit_paddle", "version": 1, "big": np.ones(200_000_000, np.float32)}}
print("writing", flush=True)
checkpoint.save(payload, checkpoint.checkpoint_path({out!r}, 3))
"""


def test_sigkill_while_writing_keeps_the_previous_checkpoint(tmp_path, data_root, small_train):
    out = tmp_path / "run"
    first = subprocess.run(small_train(out, data_root, 2), capture_output=True, text=True)
    assert first.returncode == 0, first.stderr[-2000:]
    good = checkpoint.latest_checkpoint(out)
    before = good.read_bytes()

    writer = subprocess.Popen([sys.executable, "-c", KILLED_WRITER.format(out=str(out))],
                              stdout=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "writing"
    folder = out / checkpoint.CHECKPOINT_DIR
    deadline = time.time() + 60
    while not any(p.name.startswith(".iter_0000003") for p in folder.iterdir()):
        assert time.time() < deadline and writer.poll() is None
        time.sleep(0.01)
    os.kill(writer.pid, signal.SIGKILL)
    writer.wait()

    assert checkpoint.latest_checkpoint(out) == good and good.read_bytes() == before
    resumed = subprocess.run(small_train(out, data_root, 3) + ["--resume"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "at iteration 2" in resumed.stdout


def test_missing_domain_folder_fails_before_training(tmp_path, small_train):
    (tmp_path / "data" / "trainA").mkdir(parents=True)
    run = subprocess.run(small_train(tmp_path / "out", tmp_path / "data", 2), capture_output=True, text=True)
    assert run.returncode == 1
    assert "trainB" in run.stderr and "{trainA,trainB,testA,testB}" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "out" / "checkpoints").exists()


def test_resuming_a_checkpoint_of_another_configuration_lists_the_mismatch(tmp_path, data_root, small_train):
    out = tmp_path / "run"
    assert subprocess.run(small_train(out, data_root, 1), capture_output=True).returncode == 0
    path = checkpoint.latest_checkpoint(out)
    run = subprocess.run(small_train(tmp_path / "other", data_root, 2, "-o", "model.ch=8") + ["--resume", str(path)],
                         capture_output=True, text=True)
    assert run.returncode == 1 and "does not fit this model" in run.stderr and "has shape" in run.stderr


def test_foreign_file_as_resume_checkpoint(tmp_path, data_root, small_train):
    bogus = tmp_path / "bogus.pdparams"
    bogus.write_bytes(b"\x80\x04not really")
    run = subprocess.run(small_train(tmp_path / "o", data_root, 1) + ["--resume", str(bogus)],
                         capture_output=True, text=True)
    assert run.returncode == 1 and "bogus.pdparams" in run.stderr and "Traceback" not in run.stderr
