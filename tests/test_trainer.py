"""The training loop: outputs, exact resume, schedule, fakes reuse, failures and the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import paddle
import pytest

from conftest import tiny_config
from ugatit_paddle.formats import checkpoint
from ugatit_paddle.training.loop import HalfLinearDecay, NonFiniteLossError, Trainer

ROOT = Path(__file__).resolve().parents[1]


def _weights(trainer: Trainer) -> dict[str, np.ndarray]:
    return {f"{n}.{k}": v.numpy() for n, net in trainer.nets.items() for k, v in net.state_dict().items()}


def test_train_writes_checkpoints_samples_and_config(tmp_path, data_root):
    cfg = tiny_config(tmp_path, data={"root": str(data_root)}, train={"iterations": 3, "keep_checkpoints": 1})
    trainer = Trainer.from_dict(cfg)
    final = trainer.train()
    out = Path(cfg["output_dir"])
    assert final == out / "checkpoints" / "iter_0000003.pdparams"
    assert [i for i, _ in checkpoint.list_checkpoints(out)] == [3]  # iteration 2 pruned (keep 1)
    sheet = out / "samples" / "A2B_0000002.png"
    from PIL import Image
    assert Image.open(sheet).size == (2 * 128, 7 * 128)  # one train and one test image, 7 tiles each
    assert (out / "samples" / "B2A_0000003.png").is_file() and (out / "config.yaml").is_file()
    assert any((out / "vdl").iterdir())
    payload = checkpoint.load(final)
    assert payload["iteration"] == 3 and set(payload["optimizers"]) == {"G", "D"}


def test_resume_continues_exactly(tmp_path, data_root):
    """2N straight iterations == N, stop, resume from the checkpoint, N more (lr decay included)."""
    base = {"data": {"root": str(data_root)}, "train": {"iterations": 4, "save_every": 100, "sample_every": 100}}
    straight = Trainer.from_dict(tiny_config(tmp_path / "a", **base))
    straight.train()
    first = Trainer.from_dict(tiny_config(tmp_path / "b", **base))
    first.train(stop_after=2)
    assert first.iteration == 2
    resumed = Trainer.from_dict(tiny_config(tmp_path / "b", **base))
    resumed.train(resume=True)
    assert resumed.iteration == 4
    a, b = _weights(straight), _weights(resumed)
    worst = max(float(np.abs(a[k] - b[k]).max()) for k in a)
    assert worst <= 1e-6, worst
    assert straight.lr_schedule.last_lr == resumed.lr_schedule.last_lr == 0.0


def test_learning_rate_schedule_is_the_official_one():
    schedule = HalfLinearDecay(1e-4, iterations=10)
    lrs = []
    for _ in range(10):
        lrs.append(schedule.last_lr)
        schedule.step()
    official = [1e-4 - (1e-4 / 5) * max(0, step - 5) for step in range(1, 11)]  # UGATIT.train, per step
    np.testing.assert_allclose(lrs, official, atol=1e-12)
    assert HalfLinearDecay(1e-4, 10, decay=False).get_lr() == 1e-4


def test_reusing_fakes_gives_the_official_losses(tmp_path):
    x = paddle.uniform([1, 3, 128, 128], min=-1, max=1, seed=3)
    y = paddle.uniform([1, 3, 128, 128], min=-1, max=1, seed=4)
    losses = {}
    for reuse in (True, False):
        trainer = Trainer.from_dict(tiny_config(tmp_path, train={"reuse_fakes": reuse}))
        trainer.set_train_mode(True)
        losses[reuse] = [trainer.train_step(x, y) for _ in range(2)]
    for a, b in zip(losses[True], losses[False]):
        for key in ("D/total", "G/total"):
            assert abs(a[key] - b[key]) <= 1e-5 * abs(b[key])


def test_non_finite_loss_stops_with_the_iteration_and_term(tmp_path, data_root):
    trainer = Trainer.from_dict(tiny_config(tmp_path, data={"root": str(data_root)},
                                            train={"iterations": 3, "save_every": 1}))
    w = trainer.nets["disLA"].conv1x1.weight
    w.set_value(paddle.full(w.shape, float("nan")))
    with pytest.raises(NonFiniteLossError, match=r"iteration 1: D/A=nan"):
        trainer.train()
    assert checkpoint.list_checkpoints(tmp_path / "out") == []  # the broken state is not saved


def test_bad_config_exits_2_and_writes_nothing(tmp_path):
    out = tmp_path / "never"
    run = subprocess.run([sys.executable, str(ROOT / "tools" / "train.py"), "-c", str(ROOT / "configs" / "demo.yaml"),
                          "-o", f"output_dir={out}", "-o", "model.img_szie=64"], capture_output=True, text=True)
    assert run.returncode == 2
    assert "did you mean 'model.img_size'" in run.stderr and "Traceback" not in run.stderr
    assert not out.exists()
