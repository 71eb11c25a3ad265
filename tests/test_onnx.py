"""ONNX export through paddle2onnx and ONNX Runtime: outputs within 1e-4 of the dygraph generator (official
and TF variant), dynamic batch, predict --onnx, Translator.from_onnx, and a clear message without the
optional packages or with the paddle2onnx line of the other Paddle (2.x for Paddle 3, 1.x for Paddle 2.6)."""

from __future__ import annotations

import importlib.metadata
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
from ugatit_paddle.inference import onnx as onnx_module
from ugatit_paddle.inference.onnx import (
    OnnxModel, OnnxUnavailableError, check_paddle2onnx_version, export_checkpoint_onnx, install_command, require,
)
from ugatit_paddle.formats.checkpoint import load_generators
from ugatit_paddle.inference.translate import DygraphRunner, Translator

ROOT = Path(__file__).resolve().parents[1]
PADDLE_2 = int(paddle.__version__.split(".")[0]) == 2  # (develop builds are 0.0.0: Paddle 3 code)


def _why_no_onnx() -> str | None:
    """Why this environment cannot export ONNX (the message users get), or None."""
    missing = [m for m in ("paddle2onnx", "onnx", "onnxruntime") if importlib.util.find_spec(m) is None]
    if missing:
        return f"{', '.join(missing)} not installed ({install_command()})"
    try:
        check_paddle2onnx_version(importlib.metadata.version("paddle2onnx"))
    except OnnxUnavailableError as e:
        return str(e)
    return None


needs_onnx = pytest.mark.skipif(_why_no_onnx() is not None, reason=str(_why_no_onnx()))


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
    line = '"paddle2onnx<2"' if PADDLE_2 else '"paddle2onnx>=2"'
    with pytest.raises(OnnxUnavailableError, match=f"install it with: pip install {line} onnx onnxruntime"):
        require("paddle2onnx", "ONNX export")


@pytest.mark.parametrize("paddle_version, installed, right_line", [
    ("2.6.2", "2.1.0", "1.x"), ("3.3.1", "1.3.1", "2.x"), ("0.0.0", "1.3.1", "2.x"),
])
def test_the_other_paddle2onnx_line_gives_one_line_naming_the_right_one(paddle_version, installed, right_line):
    """paddle2onnx 2.x refuses to import under Paddle 2.6; 1.x under Paddle 3 writes a graph without outputs."""
    with pytest.raises(OnnxUnavailableError) as info:
        check_paddle2onnx_version(installed, paddle_version)
    spec = '"paddle2onnx<2"' if right_line == "1.x" else '"paddle2onnx>=2"'
    assert str(info.value) == (f"ONNX export with Paddle {paddle_version} needs paddle2onnx {right_line}, but "
                               f"paddle2onnx {installed} (made for Paddle {3 if right_line == '1.x' else 2}) is "
                               f"installed; install the right one with: pip install {spec} onnx onnxruntime")


@pytest.mark.parametrize("paddle_version, installed", [
    ("2.6.2", "1.3.1"), ("2.6.1", "1.0.8"), ("3.3.1", "2.1.0"), ("3.0.0", "2.0.1"), ("0.0.0", "2.1.0"),
])
def test_the_fitting_paddle2onnx_line_passes(paddle_version, installed):
    check_paddle2onnx_version(installed, paddle_version)


def test_export_tool_refuses_the_other_paddle2onnx_line_in_one_line(tmp_path, monkeypatch, capsys, load_tool):
    """What a user with the wrong paddle2onnx gets from tools/export_model.py: exit 1 and one line saying which
    paddle2onnx this Paddle needs (checked before paddle2onnx is imported: 2.x raises at import under 2.6)."""
    other = "2.1.0" if PADDLE_2 else "1.3.1"
    real_version = importlib.metadata.version
    monkeypatch.setattr(onnx_module.importlib.metadata, "version",
                        lambda name: other if name == "paddle2onnx" else real_version(name))
    monkeypatch.setitem(sys.modules, "paddle2onnx", None)  # importing it would fail the test differently
    args = ModelConfig(img_size=64, ch=8, n_res=1, light=True, global_layers=5, local_layers=3)
    ckpt = _checkpoint(tmp_path / "model.pdparams", args)
    capsys.readouterr()
    assert load_tool("export_model").main(["--checkpoint", str(ckpt), "--format", "onnx",
                                           "--output", str(tmp_path / "A2B.onnx")]) == 1
    err = capsys.readouterr().err  # (in-process, the tool may also warn that paddle was imported before it)
    errors = [line for line in err.splitlines() if not line.startswith("warning: paddle was imported")]
    assert errors == [f"error: ONNX export with Paddle {paddle.__version__} needs paddle2onnx "
                      f"{'1.x' if PADDLE_2 else '2.x'}, but paddle2onnx {other} (made for Paddle {3 if PADDLE_2 else 2}) "
                      f"is installed; install the right one with: {install_command()}"], err
    assert not (tmp_path / "A2B.onnx").exists()
