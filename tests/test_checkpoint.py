"""Checkpoint files: atomic writes, safe and clear loading, finding and pruning; generator files (the two
generators alone, float32 or float16), written from a checkpoint or by the loop and taken by Translator,
predict.py, test.py and export_model.py like a checkpoint."""

from __future__ import annotations

import errno
import os
import pickle
import shutil
from pathlib import Path

import numpy as np
import paddle
import pytest
from PIL import Image

from ugatit_paddle.formats import checkpoint
from ugatit_paddle.formats.checkpoint import CheckpointError
from ugatit_paddle.config import ModelConfig
from ugatit_paddle.models import build_networks
from ugatit_paddle.formats.safe_pickle import UnsafePickleError
from ugatit_paddle.config import config_from_dict
from ugatit_paddle.training.loop import Trainer
from ugatit_paddle.training.ugatit import UGATIT
from ugatit_paddle.inference.translate import Translator

ARGS = ModelConfig(img_size=128, ch=8, n_res=2, light=True)


def _save(path, args=ARGS):
    nets = build_networks(args)
    return checkpoint.save_model(path, args, {n: net.state_dict() for n, net in nets.items()}), nets


def test_round_trip_restores_every_weight(tmp_path):
    path, nets = _save(tmp_path / "m.pdparams")
    payload = checkpoint.load(path)
    assert checkpoint.model_config_of(payload) == ARGS
    fresh = build_networks(ARGS)
    checkpoint.load_networks(fresh, payload, str(path))
    for name, net in nets.items():
        for key, value in net.state_dict().items():
            assert np.array_equal(fresh[name].state_dict()[key].numpy(), value.numpy())


def test_failed_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    path, _ = _save(tmp_path / "m.pdparams")
    before = path.read_bytes()

    def disk_full(obj, target, *args, **kwargs):
        with open(target, "wb") as f:
            f.write(b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(paddle, "save", disk_full)
    with pytest.raises(CheckpointError, match="disk is full.*previous checkpoint is unchanged"):
        _save(path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["m.pdparams"]  # no temporary file left behind


def test_mismatched_configuration_lists_keys_and_shapes(tmp_path):
    path, _ = _save(tmp_path / "light.pdparams")
    full = build_networks(ModelConfig(img_size=128, ch=8, n_res=2, light=False))
    with pytest.raises(CheckpointError, match=r"light=True.*FC.0.weight' has shape \[32, 32\], expected \[32768, 32\]"):
        checkpoint.load_networks(full, checkpoint.load(path), str(path))
    other_ch = build_networks(ModelConfig(img_size=128, ch=4, n_res=2, light=True))
    with pytest.raises(CheckpointError, match="has shape"):
        checkpoint.load_networks(other_ch, checkpoint.load(path), str(path))


@pytest.mark.parametrize("content, message", [
    (b"", "not a paddle.save file"),
    (b"\x80\x04\x95garbage", "truncated or corrupt"),
])
def test_unreadable_files_give_clear_errors(tmp_path, content, message):
    path = tmp_path / "x.pdparams"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=message):
        checkpoint.load(path)


def test_truncated_checkpoint(tmp_path):
    path, _ = _save(tmp_path / "m.pdparams")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        checkpoint.load(path)


def test_foreign_files(tmp_path):
    plain = tmp_path / "plain.pdparams"
    paddle.save(paddle.nn.Linear(2, 2).state_dict(), str(plain))
    with pytest.raises(CheckpointError, match="not a ugatit_paddle checkpoint"):
        checkpoint.load(plain)
    with pytest.raises(CheckpointError, match="convert_torch.py"):
        (tmp_path / "official.pt").write_bytes(b"x")
        checkpoint.load(tmp_path / "official.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        checkpoint.load(tmp_path / "missing.pdparams")


class _Payload:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def test_crafted_pickle_is_refused_and_nothing_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.pdparams"
    path.write_bytes(pickle.dumps({"format": "ugatit_paddle", "x": _Payload()}, protocol=4))
    with pytest.raises(UnsafePickleError):
        checkpoint.load(path)
    assert not (tmp_path / "pwned").exists()


def test_listing_latest_and_pruning(tmp_path):
    for it in (5, 10, 20, 15):
        checkpoint.save({"format": "ugatit_paddle", "version": 1}, checkpoint.checkpoint_path(tmp_path, it))
    assert [i for i, _ in checkpoint.list_checkpoints(tmp_path)] == [5, 10, 15, 20]
    assert checkpoint.latest_checkpoint(tmp_path).name == "iter_0000020.pdparams"
    checkpoint.prune(tmp_path, keep=2)
    assert [i for i, _ in checkpoint.list_checkpoints(tmp_path)] == [15, 20]
    assert checkpoint.latest_checkpoint(tmp_path / "nothing") is None


@pytest.mark.parametrize("stored", ["float16", "float64"])
def test_weights_of_any_float_dtype_load_cast_to_the_model(tmp_path, capsys, stored):
    """A halved (float16) or float64 checkpoint loads into a float32 model, and a float32 one into a float64
    model (train.float64), each value cast, with one line saying so."""
    nets = build_networks(ARGS)
    states = {n: {k: v.numpy().astype(stored) for k, v in net.state_dict().items()} for n, net in nets.items()}
    path = checkpoint.save_model(tmp_path / f"{stored}.pdparams", ARGS, states)
    payload = checkpoint.load(path)
    assert payload["networks"]["genA2B"]["FC.0.weight"].dtype == np.dtype(stored)  # stored as it was
    fresh = build_networks(ARGS)
    checkpoint.load_networks(fresh, payload, str(path))
    note = capsys.readouterr().err.strip().splitlines()
    assert len(note) == 1 and f"stores {stored} weights; loaded as float32" in note[0]
    for name, net in fresh.items():
        for key, value in net.state_dict().items():
            assert value.dtype == paddle.float32
            np.testing.assert_array_equal(value.numpy(), states[name][key].astype(np.float32))


def test_float32_checkpoint_loads_into_a_float64_model(tmp_path, capsys, tiny_config):
    path, _ = _save(tmp_path / "m.pdparams")
    model = UGATIT(config_from_dict(tiny_config(tmp_path, train={"float64": True})))
    model.load_state(checkpoint.load(path), str(path))
    assert "stores float32 weights; loaded as float64" in capsys.readouterr().err
    assert {v.dtype for net in model.nets.values() for v in net.state_dict().values()} == {paddle.float64}
    real = paddle.uniform([1, 3, 128, 128], min=-1, max=1)
    assert np.isfinite(model.step(real, real)["G/total"])


def test_resume_from_a_halved_checkpoint(tmp_path, data_root, capsys, tiny_config):
    """`--resume FILE` with a float16 weights-only checkpoint (a converted, halved official one)."""
    nets = build_networks(ARGS)
    half = {n: {k: v.numpy().astype(np.float16) for k, v in net.state_dict().items()} for n, net in nets.items()}
    path = checkpoint.save_model(tmp_path / "half.pdparams", ARGS, half)
    cfg = tiny_config(tmp_path, data={"root": str(data_root)},
                      train={"iterations": 1, "save_every": 100, "sample_every": 100})
    trainer = Trainer.from_dict(cfg)
    trainer.train(resume=str(path))
    assert "stores float16 weights; loaded as float32" in capsys.readouterr().err
    assert trainer.iteration == 1


# --------------------------------------------------------------------------------------- generator files
SMALL = {"img_size": 64, "ch": 8, "n_res": 1, "global_layers": 5, "local_layers": 3}


def _trained_checkpoint(tmp_path: Path, light: bool, tiny_config) -> Path:
    """A training checkpoint (networks + both Adam states) after one iteration on random images."""
    model = UGATIT(config_from_dict(tiny_config(tmp_path, model=dict(SMALL, light=light))))
    x = paddle.uniform([1, 3, 64, 64], min=-1, max=1, seed=1)
    model.step(x, -x)
    return checkpoint.save(model.state(), tmp_path / "iter_0000001.pdparams")


@pytest.mark.parametrize("light", [False, True])
def test_weights_only_file_is_small_and_translates_the_same(tmp_path, light, tiny_config, load_tool):
    ckpt = _trained_checkpoint(tmp_path, light, tiny_config)
    tool = load_tool("export_model")
    full32, half16 = tmp_path / "gen32.pdparams", tmp_path / "gen16.pdparams"
    assert tool.main(["--checkpoint", str(ckpt), "--weights-only", "--output", str(full32)]) == 0
    assert tool.main(["--checkpoint", str(ckpt), "--weights-only", "--dtype", "float16", "--output", str(half16)]) == 0
    payload = checkpoint.load(full32)
    assert payload["kind"] == "generators" and payload["iteration"] == 1
    assert set(payload["networks"]) == {"genA2B", "genB2A"} and "optimizers" not in payload
    assert payload["model_args"]["light"] is light
    # generators / (6 networks + 2 Adam moments each): a third when the generators dominate (full model)
    ratio = full32.stat().st_size / ckpt.stat().st_size
    assert 0.2 < ratio < 0.34 if not light else ratio < 0.34
    assert 0.45 < half16.stat().st_size / full32.stat().st_size < 0.55

    image = np.random.default_rng(0).integers(0, 256, (50, 70, 3), dtype=np.uint8)
    want = np.asarray(Translator.from_checkpoint(ckpt, "B2A").translate(image))
    assert np.array_equal(np.asarray(Translator.from_checkpoint(full32, "B2A").translate(image)), want)
    half = np.asarray(Translator.from_checkpoint(half16, "B2A").translate(image)).astype(int)
    assert np.abs(half - want).max() <= 8  # uint8 levels: float16 weights round at 1e-3 relative


def test_predict_test_and_export_take_a_generator_file(tmp_path, data_root, tiny_config, load_tool):
    ckpt = _trained_checkpoint(tmp_path, True, tiny_config)
    gen = checkpoint.extract_generators(ckpt, tmp_path / "gen.pdparams", "float16")
    assert load_tool("predict").main(["--checkpoint", str(gen), "--input", str(data_root / "testA"),
                                  "--output", str(tmp_path / "pred")]) == 0
    assert len(list((tmp_path / "pred").glob("*.png"))) == 2
    archive = shutil.make_archive(str(tmp_path / "dataset"), "zip", data_root)  # test.py takes a zip data.root
    assert load_tool("test").main(["-o", f"data.root={archive}", "-o", f"data.cache_dir={tmp_path / 'cache'}",
                               "-o", f"output_dir={tmp_path / 'run'}", "--checkpoint", str(gen)]) == 0
    assert Image.open(next((tmp_path / "run" / "test" / "B2A").glob("*.png"))).size == (64, 64)
    assert load_tool("export_model").main(["--checkpoint", str(gen), "--output", str(tmp_path / "exported")]) == 0


def test_save_generators_from_layers_and_pruning(tmp_path, tiny_config):
    trainer = Trainer.from_dict(tiny_config(tmp_path, model=dict(SMALL, light=True),
                                            train={"save_generators_every": 2}))
    assert trainer.cfg.train.save_generators_every == 2
    out = Path(trainer.cfg.output_dir)
    for it in (2, 4, 6, 8):
        checkpoint.save_generators(checkpoint.generators_path(out, it), trainer.cfg.model, trainer.model.nets, iteration=it)
        checkpoint.prune(out, 3, checkpoint.GENERATORS_DIR)
    assert [i for i, _ in checkpoint.list_checkpoints(out, checkpoint.GENERATORS_DIR)] == [4, 6, 8]
    assert checkpoint.list_checkpoints(out) == []  # training checkpoints are a separate list
    stored = checkpoint.load(checkpoint.generators_path(out, 8))["networks"]["genA2B"]
    for key, value in trainer.model.nets["genA2B"].state_dict().items():
        assert np.array_equal(stored[key], value.numpy())
    with pytest.raises(checkpoint.CheckpointError, match="dtype"):
        checkpoint.save_generators(tmp_path / "x.pdparams", trainer.cfg.model, trainer.model.nets, dtype="int8")
    with pytest.raises(checkpoint.CheckpointError, match="without genB2A"):
        checkpoint.save_generators(tmp_path / "x.pdparams", trainer.cfg.model, {"genA2B": trainer.model.nets["genA2B"]})
