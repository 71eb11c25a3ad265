"""ONNX export through paddle2onnx and ONNX Runtime: outputs within 1e-4 of the dygraph generator (official
and TF variant), dynamic batch, predict --onnx, Translator.from_onnx, and a clear message without the
optional packages."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import paddle
import pytest
from PIL import Image

from ugatit_paddle.formats import checkpoint
from ugatit_paddle.inference.export import ExportError
from ugatit_paddle.config import ModelConfig
from ugatit_paddle.models import build_networks
from ugatit_paddle.inference.onnx import OnnxModel, OnnxUnavailableError, export_checkpoint_onnx, require
from ugatit_paddle.formats.checkpoint import load_generators
from ugatit_paddle.inference.translate import DygraphRunner, Translator

ROOT = Path(__file__).resolve().parents[1]
HAVE_ONNX = all(importlib.util.find_spec(m) for m in ("paddle2onnx", "onnx", "onnxruntime"))
needs_onnx = pytest.mark.skipif(not HAVE_ONNX, reason="paddle2onnx, onnx and onnxruntime are not installed "
                                                      "(pip install paddle2onnx onnxruntime)")


def _checkpoint(path: Path, args: ModelConfig) -> Path:
    paddle.seed(3)
    nets = build_networks(args, ("genA2B", "genB2A"))
    return checkpoint.save_model(path, args, {n: net.state_dict() for n, net in nets.items()})


@needs_onnx
@pytest.mark.parametrize("variant", ["official", "tf"])
@pytest.mark.parametrize("light", [True, False])
def test_onnx_matches_dygraph_with_a_dynamic_batch(tmp_path, light, variant):
    args = ModelConfig(img_size=64, ch=8, n_res=2, light=light, global_layers=5, local_layers=3, variant=variant)
    ckpt = _checkpoint(tmp_path / "model.pdparams", args)
    path = export_checkpoint_onnx(ckpt, tmp_path / "B2A.onnx", direction="B2A")
    model = OnnxModel(path)
    assert (model.direction, model.img_size, model.info["model_args"]["light"]) == ("B2A", 64, light)
    assert model.info["model_args"]["variant"] == variant
    assert model.output_names == ["translated", "cam_logit", "heatmap"]
    _, nets = load_generators(ckpt, ("genB2A",))
    dygraph = DygraphRunner(nets["genB2A"])
    x = np.random.default_rng(0).uniform(-1, 1, (3, 3, 64, 64)).astype(np.float32)
    for batch in (1, 3):
        got, want = model(x[:batch]), dygraph(x[:batch])
        assert [g.shape for g in got] == [(batch, 3, 64, 64), (batch, 2), (batch, 1, 16, 16)]
        for g, w in zip(got, want):
            np.testing.assert_allclose(g, w, rtol=0, atol=1e-4)


@needs_onnx
def test_predict_onnx_and_translator(tmp_path, data_root, load_tool):
    args = ModelConfig(img_size=64, ch=8, n_res=1, light=True, global_layers=5, local_layers=3)
    ckpt = _checkpoint(tmp_path / "model.pdparams", args)
    export_tool = load_tool("export_model")
    assert export_tool.main(["--checkpoint", str(ckpt), "--format", "onnx", "--output", str(tmp_path / "onnx")]) == 0
    assert (tmp_path / "onnx" / "model.onnx").is_file()
    predict = load_tool("predict")
    assert predict.main(["--onnx", str(tmp_path / "onnx"), "--input", str(data_root / "testA"),
                         "--output", str(tmp_path / "out")]) == 0
    written = sorted((tmp_path / "out").glob("*.png"))
    assert len(written) == 2
    assert predict.main(["--onnx", str(tmp_path / "onnx"), "--direction", "B2A", "--input", str(data_root / "testA"),
                         "--output", str(tmp_path / "out2")]) == 1  # exported A2B
    image = Image.open(sorted((data_root / "testA").iterdir())[0])
    onnx_out = np.asarray(Translator.from_onnx(tmp_path / "onnx" / "model.onnx").translate(image)).astype(int)
    eager_out = np.asarray(Translator.from_checkpoint(ckpt).translate(image)).astype(int)
    assert np.abs(onnx_out - eager_out).max() <= 1  # uint8 rounding of values within 1e-4
    with pytest.raises(ExportError, match="does not exist"):
        OnnxModel(tmp_path / "missing.onnx")


def test_missing_packages_give_a_clear_message(monkeypatch):
    monkeypatch.setitem(sys.modules, "paddle2onnx", None)  # import paddle2onnx now raises ImportError
    with pytest.raises(OnnxUnavailableError, match="pip install paddle2onnx onnxruntime"):
        require("paddle2onnx", "ONNX export")
