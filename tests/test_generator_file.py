"""Generator files: the two generators alone (float32 or float16), written from a checkpoint or by the loop,
and taken by Translator, predict.py, test.py and export_model.py like a checkpoint."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import numpy as np
import paddle
import pytest
from PIL import Image

from ugatit_paddle.formats import checkpoint
from ugatit_paddle.config import config_from_dict
from ugatit_paddle.training.loop import Trainer
from ugatit_paddle.training.ugatit import UGATIT
from ugatit_paddle.inference.translate import Translator

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"img_size": 64, "ch": 8, "n_res": 1, "global_layers": 5, "local_layers": 3}


def _tool(name: str):
    spec = importlib.util.spec_from_file_location(f"tool_{name}", ROOT / "tools" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _trained_checkpoint(tmp_path: Path, light: bool, tiny_config) -> Path:
    """A training checkpoint (networks + both Adam states) after one iteration on random images."""
    model = UGATIT(config_from_dict(tiny_config(tmp_path, model=dict(SMALL, light=light))))
    x = paddle.uniform([1, 3, 64, 64], min=-1, max=1, seed=1)
    model.step(x, -x)
    return checkpoint.save(model.state(), tmp_path / "iter_0000001.pdparams")


@pytest.mark.parametrize("light", [False, True])
def test_weights_only_file_is_small_and_translates_the_same(tmp_path, light, tiny_config):
    ckpt = _trained_checkpoint(tmp_path, light, tiny_config)
    tool = _tool("export_model")
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


def test_predict_test_and_export_take_a_generator_file(tmp_path, data_root, tiny_config):
    ckpt = _trained_checkpoint(tmp_path, True, tiny_config)
    gen = checkpoint.extract_generators(ckpt, tmp_path / "gen.pdparams", "float16")
    assert _tool("predict").main(["--checkpoint", str(gen), "--input", str(data_root / "testA"),
                                  "--output", str(tmp_path / "pred")]) == 0
    assert len(list((tmp_path / "pred").glob("*.png"))) == 2
    archive = shutil.make_archive(str(tmp_path / "dataset"), "zip", data_root)  # test.py takes a zip data.root
    assert _tool("test").main(["-o", f"data.root={archive}", "-o", f"data.cache_dir={tmp_path / 'cache'}",
                               "-o", f"output_dir={tmp_path / 'run'}", "--checkpoint", str(gen)]) == 0
    assert Image.open(next((tmp_path / "run" / "test" / "B2A").glob("*.png"))).size == (64, 64)
    assert _tool("export_model").main(["--checkpoint", str(gen), "--output", str(tmp_path / "exported")]) == 0


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
