"""Exported inference models: Paddle Inference matches dygraph, predict --inference-model, clear errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import paddle
import pytest
from PIL import Image

from ugatit_paddle.formats import checkpoint
from ugatit_paddle.inference.export import INFO_FILE, ExportError, InferenceModel, export_checkpoint, model_files
from ugatit_paddle.config import ModelConfig
from ugatit_paddle.models import build_networks
from ugatit_paddle.formats.checkpoint import load_generators
from ugatit_paddle.inference.translate import DygraphRunner

ROOT = Path(__file__).resolve().parents[1]



def _checkpoint(path: Path, args: ModelConfig) -> Path:
    paddle.seed(2)
    nets = build_networks(args, ("genA2B", "genB2A"))
    return checkpoint.save_model(path, args, {n: net.state_dict() for n, net in nets.items()})


@pytest.fixture(scope="module")
def light_ckpt(tmp_path_factory) -> Path:
    args = ModelConfig(img_size=128, ch=8, n_res=1, light=True)
    return _checkpoint(tmp_path_factory.mktemp("ckpt") / "light.pdparams", args)


def _max_diffs(a, b) -> list[float]:
    return [float(np.abs(x - y).max()) for x, y in zip(a, b)]


@pytest.mark.parametrize("light", [True, False])
def test_inference_model_matches_dygraph(tmp_path, light, light_ckpt):
    ckpt = light_ckpt if light else _checkpoint(tmp_path / "full.pdparams", ModelConfig(img_size=128, ch=8, n_res=2))
    out = export_checkpoint(ckpt, tmp_path / "exported", direction="B2A")
    _, _, info = model_files(out)
    assert info["direction"] == "B2A" and info["generator"] == "genB2A" and info["img_size"] == 128
    assert info["outputs"] == ["image", "cam_logit", "heatmap"]
    model = InferenceModel(out)
    _, nets = load_generators(ckpt, ("genB2A",))
    dygraph = DygraphRunner(nets["genB2A"])
    x = np.random.default_rng(0).uniform(-1, 1, (3, 3, 128, 128)).astype(np.float32)
    for batch in (1, 3):  # one predictor, two batch sizes: the batch dimension is dynamic
        got, want = model(x[:batch]), dygraph(x[:batch])
        assert [o.shape for o in got] == [(batch, 3, 128, 128), (batch, 2), (batch, 1, 32, 32)]
        assert max(_max_diffs(got, want)) <= 1e-5, _max_diffs(got, want)
    with pytest.raises(ValueError, match=r"expected images of shape \[N, 3, 128, 128\]"):
        model(x[:, :, :64, :64])


@pytest.mark.parametrize("light", [True, False])
def test_onednn_inference_matches_dygraph(tmp_path, light, light_ckpt):
    """Paddle 3.x oneDNN cannot run `nearest_interp` (its `scale` attribute is an array of doubles); the exported
    graph has none, and the oneDNN predictor agrees with the generator."""
    ckpt = light_ckpt if light else _checkpoint(tmp_path / "full.pdparams", ModelConfig(img_size=128, ch=8, n_res=2))
    out = export_checkpoint(ckpt, tmp_path / "exported")
    program, _, _ = model_files(out)
    assert "nearest_interp" not in program.read_text(errors="replace")
    model = InferenceModel(out, mkldnn=True)
    _, nets = load_generators(ckpt, ("genA2B",))
    dygraph = DygraphRunner(nets["genA2B"])
    x = np.random.default_rng(1).uniform(-1, 1, (3, 3, 128, 128)).astype(np.float32)
    for batch in (1, 3):
        assert max(_max_diffs(model(x[:batch]), dygraph(x[:batch]))) <= 1e-5


def test_export_tool_and_predict_with_the_inference_model(tmp_path, light_ckpt, load_tool, run_tool):
    exported = tmp_path / "exported"
    run = run_tool("export_model", "--checkpoint", str(light_ckpt), "--output", str(exported))
    assert run.returncode == 0, run.stderr
    assert "exported genA2B (A2B, input [N, 3, 128, 128])" in run.stdout
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(3)
    for i, size in enumerate([(64, 64), (90, 50), (128, 128)]):
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(images / f"im{i}.png")
    (images / "bad.jpg").write_bytes(b"\xff\xd8 broken jpeg")
    run = run_tool("predict", "--inference-model", str(exported), "--input", str(images), "--output",
                   str(tmp_path / "inf"), "--keep-size", "--heatmap", "--batch-size", "2")
    assert run.returncode == 0, run.stderr
    assert f"translated 3 images, skipped 1 unreadable: {images / 'bad.jpg'} (A2B)" in run.stdout
    predict = load_tool("predict")
    assert predict.main(["--checkpoint", str(light_ckpt), "--input", str(images), "--output", str(tmp_path / "dy"),
                         "--keep-size", "--heatmap"]) == 0
    for i in range(3):
        for name in (f"im{i}.png", f"im{i}_heatmap.png"):
            a, b = np.asarray(Image.open(tmp_path / "inf" / name)), np.asarray(Image.open(tmp_path / "dy" / name))
            assert a.shape == b.shape and np.abs(a.astype(int) - b).max() <= 1, name
    assert Image.open(tmp_path / "inf" / "im1.png").size == (90, 50)


def test_bad_inference_model_folders(tmp_path, light_ckpt, capsys, load_tool):
    with pytest.raises(ExportError, match="does not exist"):
        model_files(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ExportError, match=r"missing model.json \(or model.pdmodel\), model.pdiparams, export.json"):
        model_files(tmp_path / "empty")
    good = export_checkpoint(light_ckpt, tmp_path / "good")
    partial = tmp_path / "partial"
    shutil.copytree(good, partial)
    (partial / "model.pdiparams").unlink()
    with pytest.raises(ExportError, match="missing model.pdiparams; create it with tools/export_model.py"):
        model_files(partial)
    (good / INFO_FILE).write_text(json.dumps({"format": "something else"}))
    with pytest.raises(ExportError, match="was not written by tools/export_model.py"):
        model_files(good)

    predict = load_tool("predict")
    image = tmp_path / "x.png"
    Image.new("RGB", (32, 32)).save(image)
    assert predict.main(["--inference-model", str(partial), "--input", str(image),
                         "--output", str(tmp_path / "o")]) == 1
    assert "missing model.pdiparams" in capsys.readouterr().err
    exported = export_checkpoint(light_ckpt, tmp_path / "a2b")
    assert predict.main(["--inference-model", str(exported), "--direction", "B2A", "--input", str(image),
                         "--output", str(tmp_path / "o")]) == 1
    assert "translates A2B, not B2A" in capsys.readouterr().err
    export = load_tool("export_model")
    only_a2b = checkpoint.save_model(tmp_path / "only.pdparams", ModelConfig(img_size=128, ch=8, n_res=1, light=True),
                                     {"genA2B": checkpoint.load(light_ckpt)["networks"]["genA2B"]})
    assert export.main(["--checkpoint", str(only_a2b), "--output", str(tmp_path / "x"), "--direction", "B2A"]) == 1
    assert "has no weights for genB2A" in capsys.readouterr().err
