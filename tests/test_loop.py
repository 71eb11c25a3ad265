"""The training loop: outputs, exact resume, callbacks, failures and the command line."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import paddle
import pytest
from PIL import Image

from ugatit_paddle.formats import checkpoint
from ugatit_paddle.training.loop import StopReason, Trainer
from ugatit_paddle.training.run_lock import RunLockedError, run_lock
from ugatit_paddle.training.ugatit import NonFiniteLossError

ROOT = Path(__file__).resolve().parents[1]


def _weights(trainer: Trainer) -> dict[str, np.ndarray]:
    return {f"{n}.{k}": v.numpy() for n, net in trainer.model.nets.items() for k, v in net.state_dict().items()}


def test_train_writes_checkpoints_samples_and_config(tmp_path, data_root, tiny_config):
    cfg = tiny_config(tmp_path, data={"root": str(data_root)}, train={"iterations": 3, "keep_checkpoints": 1})
    trainer = Trainer.from_dict(cfg)
    final = trainer.train()
    out = Path(cfg["output_dir"])
    assert final == out / "checkpoints" / "iter_0000003.pdparams"
    assert [i for i, _ in checkpoint.list_checkpoints(out)] == [3]  # iteration 2 pruned (keep 1)
    sheet = out / "samples" / "A2B_0000002.png"
    assert Image.open(sheet).size == (2 * 128, 7 * 128)  # one train and one test image, 7 tiles each
    assert (out / "samples" / "B2A_0000003.png").is_file() and (out / "config.yaml").is_file()
    assert any((out / "vdl").iterdir())
    payload = checkpoint.load(final)
    assert payload["iteration"] == 3 and set(payload["optimizers"]) == {"G", "D"}


def test_resume_continues_exactly(tmp_path, data_root, tiny_config):
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
    assert straight.model.lr_schedule.last_lr == resumed.model.lr_schedule.last_lr == 0.0


def test_non_finite_loss_stops_without_saving(tmp_path, data_root, tiny_config):
    trainer = Trainer.from_dict(tiny_config(tmp_path, data={"root": str(data_root)},
                                            train={"iterations": 3, "save_every": 1}))
    w = trainer.model.nets["disLA"].conv1x1.weight
    w.set_value(paddle.full(w.shape, float("nan")))
    with pytest.raises(NonFiniteLossError, match=r"iteration 1: D/A=nan"):
        trainer.train()
    assert checkpoint.list_checkpoints(tmp_path / "out") == []  # the broken state is not saved


def test_should_stop_ends_with_samples_and_a_checkpoint(tmp_path, data_root, tiny_config):
    """The callback is asked before every iteration with the completed count; the run ends where it says."""
    trainer = Trainer.from_dict(tiny_config(tmp_path, data={"root": str(data_root)},
                                            train={"iterations": 10, "save_every": 100, "sample_every": 100}))
    asked = []
    final = trainer.train(should_stop=lambda it: asked.append(it) or it == 2)
    out = tmp_path / "out"
    assert asked == [0, 1, 2] and trainer.iteration == 2 and trainer.interrupted is StopReason.SHOULD_STOP
    assert final == out / "checkpoints" / "iter_0000002.pdparams" and final.is_file()
    assert sorted(p.name for p in (out / "samples").iterdir()) == ["A2B_0000002.png", "B2A_0000002.png"]
    assert trainer.train(resume=True, stop_after=3) == out / "checkpoints" / "iter_0000003.pdparams"
    assert trainer.interrupted is None


def test_progress_reporter_sees_every_iteration(tmp_path, data_root, tiny_config):
    class Recorder:
        calls: list = []

        def update(self, iteration, terms):
            self.calls.append(("update", iteration, sorted(terms)[:2]))

        def close(self):
            self.calls.append(("close",))

    recorder = Recorder()
    trainer = Trainer.from_dict(tiny_config(tmp_path, data={"root": str(data_root)}, train={"iterations": 2}))
    trainer.train(progress=recorder)
    assert recorder.calls == [("update", 1, ["D/A", "D/B"]), ("update", 2, ["D/A", "D/B"]),
                              ("close",)]


@pytest.mark.parametrize("override, message", [
    ("model.img_szie=64", "did you mean 'model.img_size'"),
    pytest.param("train.amp=true", "train.amp=true needs a GPU", marks=pytest.mark.skipif(
        paddle.device.get_device().startswith("gpu"), reason="AMP is available on this GPU machine")),
])
def test_bad_config_exits_2_and_writes_nothing(tmp_path, run_tool, override, message):
    out = tmp_path / "never"
    run = run_tool("train", "-c", str(ROOT / "configs" / "demo.yaml"), "-o", f"output_dir={out}", "-o", override)
    assert run.returncode == 2
    assert message in run.stderr and "Traceback" not in run.stderr
    assert not out.exists()


def test_log_file_zip_dataset_and_generator_files(tmp_path, data_root):
    """`train.py ... > train.log 2>&1` on a zip data.root: plain progress lines, the zip extracted once into
    data.cache_dir, generator files every train.save_generators_every iterations."""
    archive = shutil.make_archive(str(tmp_path / "dataset"), "zip", data_root)
    out, log = tmp_path / "run", tmp_path / "train.log"
    small = {"model.img_size": 64, "model.ch": 4, "model.n_res": 1, "model.light": "true", "model.global_layers": 5,
             "model.local_layers": 3, "data.num_workers": 0, "train.iterations": 4, "train.save_every": 1000,
             "train.sample_every": 1000, "train.sample_count": 1, "train.log_every": 2,
             "train.save_generators_every": 2, "output_dir": out, "data.root": archive,
             "data.cache_dir": tmp_path / "cache"}
    with open(log, "w") as f:
        run = subprocess.run([sys.executable, str(ROOT / "tools" / "train.py"),
                              *(a for k, v in small.items() for a in ("-o", f"{k}={v}"))],
                             stdout=f, stderr=subprocess.STDOUT, text=True)
    text = log.read_text()
    assert run.returncode == 0, text[-2000:]
    assert "\r" not in text and "extracting" in text
    lines = [line for line in text.splitlines() if line.startswith("iter ")]
    assert [line.split()[1] for line in lines] == ["2/4", "4/4"] and "s/it" in lines[0] and "ETA" in lines[0]
    assert [i for i, _ in checkpoint.list_checkpoints(out, checkpoint.GENERATORS_DIR)] == [2, 4]


def test_train_refuses_an_output_dir_in_use(tmp_path, data_root, tiny_config):
    cfg = tiny_config(tmp_path, data={"root": str(data_root)}, train={"iterations": 1})
    with run_lock(cfg["output_dir"]):
        with pytest.raises(RunLockedError, match="in use"):
            Trainer.from_dict(cfg).train()
    assert Trainer.from_dict(cfg).train().name == "iter_0000001.pdparams"
