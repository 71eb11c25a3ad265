"""The U-GAT-IT discriminator (official `Discriminator`), a PatchGAN with CAM attention and spectral norm.

`n_layers` = 7 gives the official "global" discriminators (`disGA`, `disGB`), 5 the "local" ones
(`disLA`, `disLB`). Spectral norm advances `weight_u`/`weight_v` by one power iteration per forward in
train mode only, as PyTorch's does (see `spectral_norm.py`).
"""

from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .layers import ReflectionPad2d, cam_weighting, conv2d, linear
from .spectral_norm import spectral_norm as _sn


def output_size(img_size: int, n_layers: int) -> int | None:
    """Side of the patch logits map for `img_size` inputs, or None if a layer cannot process that size.

    Each layer reflect-pads by 1 (the padded side must exceed 1) and applies a 4x4 convolution: the first
    `n_layers - 2` with stride 2, then two with stride 1.
    """
    side = img_size
    for stride in [2] * (n_layers - 2) + [1, 1]:
        if side < 2:  # reflection padding needs pad < side
            return None
        side = (side + 2 - 4) // stride + 1
    return side if side >= 1 else None


class Discriminator(nn.Layer):
    """Classify real/fake per patch and, through CAM, per image.

    `forward(x [N, 3, S, S])` returns `(logits [N, 1, P, P], cam_logit [N, 2], heatmap [N, 1, P+1, P+1])`
    where P = `output_size(S, n_layers)` (6 for the global and 30 for the local discriminator at 256 px).
    """

    def __init__(self, ch: int = 64, n_layers: int = 5) -> None:
        super().__init__()
        if n_layers < 3:
            raise ValueError(f"a discriminator needs n_layers >= 3, got {n_layers}")
        self.ch, self.n_layers = ch, n_layers
        model: list[nn.Layer] = [ReflectionPad2d(1), _sn(conv2d(3, ch, 4, stride=2)), nn.LeakyReLU(0.2)]
        for i in range(1, n_layers - 2):
            c = ch * 2 ** (i - 1)
            model += [ReflectionPad2d(1), _sn(conv2d(c, 2 * c, 4, stride=2)), nn.LeakyReLU(0.2)]
        c = ch * 2 ** (n_layers - 3)
        model += [ReflectionPad2d(1), _sn(conv2d(c, 2 * c, 4, stride=1)), nn.LeakyReLU(0.2)]
        self.model = nn.Sequential(*model)

        dim = 2 * c
        self.gap_fc = _sn(linear(dim, 1))
        self.gmp_fc = _sn(linear(dim, 1))
        self.conv1x1 = conv2d(2 * dim, dim, 1, bias=True)
        self.leaky_relu = nn.LeakyReLU(0.2)
        self.pad = ReflectionPad2d(1)
        self.conv = _sn(conv2d(dim, 1, 4, stride=1, bias=False))

    def forward(self, x: paddle.Tensor) -> tuple[paddle.Tensor, paddle.Tensor, paddle.Tensor]:
        x = self.model(x)
        # The logits use the spectrally normalised weight, the channel weighting the raw `weight_orig`.
        gap_logit = self.gap_fc(x.mean(axis=[2, 3]))
        gmp_logit = self.gmp_fc(F.adaptive_max_pool2d(x, 1).flatten(1))  # grad to the argmax, as torch
        cam_logit = paddle.concat([gap_logit, gmp_logit], axis=1)
        x = paddle.concat(
            [cam_weighting(x, self.gap_fc.weight_orig), cam_weighting(x, self.gmp_fc.weight_orig)], axis=1
        )
        x = self.leaky_relu(self.conv1x1(x))
        heatmap = x.sum(axis=1, keepdim=True)
        return self.conv(self.pad(x)), cam_logit, heatmap
