"""The U-GAT-IT generator (`ResnetGenerator` of the official code).

Encoder -> CAM attention -> gamma/beta MLP -> `n_res` AdaILN residual blocks -> ILN up-sampling decoder.
Sub-layer and parameter names mirror the official state-dict keys (`DownBlock.1.weight`,
`UpBlock1_1.norm1.rho`, `FC.0.weight`, ...), so that conversion is a per-key transpose table.
"""

from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from .layers import NearestUpsample2x, ReflectionPad2d, cam_weighting, conv2d, instance_norm, linear
from .norms import ILN, AdaILN

N_DOWNSAMPLING = 2  # the encoder halves the resolution twice; features are 4*ch channels at img_size/4


class ResnetBlock(nn.Layer):
    """Encoder residual block: x + [pad, conv3x3, IN, ReLU, pad, conv3x3, IN](x)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.conv_block = nn.Sequential(
            ReflectionPad2d(1), conv2d(dim, dim, 3, bias=False), instance_norm(dim), nn.ReLU(),
            ReflectionPad2d(1), conv2d(dim, dim, 3, bias=False), instance_norm(dim),
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return x + self.conv_block(x)


class ResnetAdaILNBlock(nn.Layer):
    """Decoder residual block whose two normalisations take the per-sample gamma/beta [N, C] of the MLP."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.pad1 = ReflectionPad2d(1)
        self.conv1 = conv2d(dim, dim, 3, bias=False)
        self.norm1 = AdaILN(dim)
        self.relu1 = nn.ReLU()
        self.pad2 = ReflectionPad2d(1)
        self.conv2 = conv2d(dim, dim, 3, bias=False)
        self.norm2 = AdaILN(dim)

    def forward(self, x: paddle.Tensor, gamma: paddle.Tensor, beta: paddle.Tensor) -> paddle.Tensor:
        out = self.relu1(self.norm1(self.conv1(self.pad1(x)), gamma, beta))
        out = self.norm2(self.conv2(self.pad2(out)), gamma, beta)
        return out + x


class Generator(nn.Layer):
    """Translate images of one domain into the other.

    Args:
        ch: channels of the first layer (`ngf`); the bottleneck has 4*ch.
        n_res: residual blocks in the encoder and in the decoder.
        img_size: input height = width; fixes the size of the full model's first MLP layer.
        light: take the MLP input from globally average-pooled features (small) instead of all
            (img_size/4)^2 * 4ch features (268M weights at 256 px, ch 64).

    `forward(x [N, 3, S, S] in [-1, 1])` returns `(image [N, 3, S, S], cam_logit [N, 2], heatmap [N, 1, S/4, S/4])`.
    """

    def __init__(self, ch: int = 64, n_res: int = 4, img_size: int = 256, light: bool = False) -> None:
        super().__init__()
        self.ch, self.n_res, self.img_size, self.light = ch, n_res, img_size, light
        mult = 2**N_DOWNSAMPLING
        dim = ch * mult

        down: list[nn.Layer] = [ReflectionPad2d(3), conv2d(3, ch, 7, bias=False), instance_norm(ch), nn.ReLU()]
        for i in range(N_DOWNSAMPLING):
            c = ch * 2**i
            down += [ReflectionPad2d(1), conv2d(c, 2 * c, 3, stride=2, bias=False), instance_norm(2 * c), nn.ReLU()]
        down += [ResnetBlock(dim) for _ in range(n_res)]
        self.DownBlock = nn.Sequential(*down)

        # Class activation map: two 1-logit classifiers whose weights also re-weight the channels.
        self.gap_fc = linear(dim, 1)
        self.gmp_fc = linear(dim, 1)
        self.conv1x1 = conv2d(2 * dim, dim, 1, bias=True)
        self.relu = nn.ReLU()

        # MLP predicting the AdaILN gamma/beta.
        mlp_in = dim if light else (img_size // mult) ** 2 * dim
        self.FC = nn.Sequential(linear(mlp_in, dim), nn.ReLU(), linear(dim, dim), nn.ReLU())
        self.gamma = linear(dim, dim)
        self.beta = linear(dim, dim)

        for i in range(n_res):
            setattr(self, f"UpBlock1_{i + 1}", ResnetAdaILNBlock(dim))

        up: list[nn.Layer] = []
        for i in range(N_DOWNSAMPLING):
            c = ch * 2 ** (N_DOWNSAMPLING - i)
            up += [NearestUpsample2x(), ReflectionPad2d(1),
                   conv2d(c, c // 2, 3, bias=False), ILN(c // 2), nn.ReLU()]
        up += [ReflectionPad2d(3), conv2d(ch, 3, 7, bias=False), nn.Tanh()]
        self.UpBlock2 = nn.Sequential(*up)

    def forward(self, x: paddle.Tensor) -> tuple[paddle.Tensor, paddle.Tensor, paddle.Tensor]:
        x = self.DownBlock(x)  # [N, 4ch, S/4, S/4]
        n = x.shape[0]

        gap_logit = self.gap_fc(x.mean(axis=[2, 3]))
        gmp_logit = self.gmp_fc(F.adaptive_max_pool2d(x, 1).flatten(1))  # grad to the argmax, as torch
        cam_logit = paddle.concat([gap_logit, gmp_logit], axis=1)  # [N, 2]
        x = paddle.concat([cam_weighting(x, self.gap_fc.weight), cam_weighting(x, self.gmp_fc.weight)], axis=1)
        x = self.relu(self.conv1x1(x))  # [N, 4ch, S/4, S/4]
        heatmap = x.sum(axis=1, keepdim=True)

        mlp_in = x.mean(axis=[2, 3]) if self.light else x.reshape([n, -1])
        h = self.FC(mlp_in)
        gamma, beta = self.gamma(h), self.beta(h)  # [N, 4ch] each

        for i in range(self.n_res):
            x = getattr(self, f"UpBlock1_{i + 1}")(x, gamma, beta)
        return self.UpBlock2(x), cam_logit, heatmap
