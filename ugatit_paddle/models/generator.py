"""The U-GAT-IT generator (`ResnetGenerator` of the official code).

Encoder -> CAM attention -> gamma/beta MLP -> `n_res` AdaILN residual blocks -> ILN up-sampling decoder.
Sub-layer and parameter names mirror the official state-dict keys (`DownBlock.1.weight`,
`UpBlock1_1.norm1.rho`, `FC.0.weight`, ...), so that conversion is a per-key transpose table.

The same blocks train, evaluate and are exported (`inference/inference_generator.py` traces this forward):
each step takes its primitives (padding, up-sampling, pooling, ILN statistics) from `layers.py` and
`norms.py`, which spell them for the CPU kernels, the plain ops or the exported static graph
(`static_forms.py`).
"""

from __future__ import annotations

from typing import NamedTuple

import paddle
import paddle.nn as nn

from .layers import (NearestUpsample2x, ReflectionPad2d, UnpaddedConv2D, cam_conv1x1, channel_sum, conv2d,
                     global_mean, global_pools, instance_norm, linear, linear_in_float32, upsample_pad_conv)
from .norms import ILN, AdaILN
from .recompute import run_block
from .variant import OFFICIAL, Variant, affine_instance_norm

N_DOWNSAMPLING = 2  # the encoder halves the resolution twice; features are 4*ch channels at img_size/4


def _instance_norm(ch: int, variant: Variant) -> nn.InstanceNorm2D:
    return affine_instance_norm(ch) if variant.affine_instance_norm else instance_norm(ch)


class ResnetBlock(nn.Layer):
    """Encoder residual block: x + [pad, conv3x3, IN, ReLU, pad, conv3x3, IN](x)."""

    def __init__(self, dim: int, variant: Variant = OFFICIAL) -> None:
        super().__init__()
        bias = variant.biases
        self.conv_block = nn.Sequential(
            ReflectionPad2d(1), conv2d(dim, dim, 3, bias=bias), _instance_norm(dim, variant), nn.ReLU(),
            ReflectionPad2d(1), conv2d(dim, dim, 3, bias=bias), _instance_norm(dim, variant),
        )

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        return x + self.conv_block(x)


class ResnetAdaILNBlock(nn.Layer):
    """Decoder residual block whose two normalisations take the per-sample gamma/beta [N, C] of the MLP."""

    def __init__(self, dim: int, variant: Variant = OFFICIAL) -> None:
        super().__init__()
        v = variant
        self.pad1 = ReflectionPad2d(1)
        self.conv1 = conv2d(dim, dim, 3, bias=v.biases)
        self.norm1 = AdaILN(dim, v.unbiased_variance, v.rho_smoothing, v.adailn_rho_init)
        self.relu1 = nn.ReLU()
        self.pad2 = ReflectionPad2d(1)
        self.conv2 = conv2d(dim, dim, 3, bias=v.biases)
        self.norm2 = AdaILN(dim, v.unbiased_variance, v.rho_smoothing, v.adailn_rho_init)

    def forward(self, x: paddle.Tensor, gamma: paddle.Tensor, beta: paddle.Tensor) -> paddle.Tensor:
        out = self.relu1(self.norm1(self.conv1(self.pad1(x)), gamma, beta))
        out = self.norm2(self.conv2(self.pad2(out)), gamma, beta)
        return out + x


class UpStage(NamedTuple):
    """One up-sampling step of `UpsamplingDecoder`: [N, 2c, H, W] -> [N, c, 2H, 2W]."""

    upsample: NearestUpsample2x
    pad: ReflectionPad2d
    conv: UnpaddedConv2D
    norm: ILN
    relu: nn.ReLU


class UpsamplingDecoder(nn.Sequential):
    """The decoder after the AdaILN blocks (`UpBlock2`): N_DOWNSAMPLING up-sampling steps [NearestUpsample2x,
    ReflectionPad2d(1), conv3x3, ILN, ReLU] halving the channels, then [ReflectionPad2d(3), conv7x7, Tanh] to
    3 channels. An `nn.Sequential` of these layers in this order, so its children are numbered as the
    official `UpBlock2` (`UpBlock2.2.weight`, `UpBlock2.3.rho`, ...); `forward` runs each up-sampling step as
    one unit (`layers.upsample_pad_conv`).

    x [N, 4ch, S/4, S/4] -> image [N, 3, S, S] in [-1, 1].
    """

    def __init__(self, ch: int, variant: Variant = OFFICIAL) -> None:
        bias = variant.biases
        stages = []
        for i in range(N_DOWNSAMPLING):
            c = ch * 2 ** (N_DOWNSAMPLING - i)
            stages.append(UpStage(NearestUpsample2x(), ReflectionPad2d(1), conv2d(c, c // 2, 3, bias=bias),
                                  ILN(c // 2, variant.unbiased_variance), nn.ReLU()))
        output = (ReflectionPad2d(3), conv2d(ch, 3, 7, bias=bias), nn.Tanh())
        super().__init__(*[layer for stage in stages for layer in stage], *output)
        self.stages = stages  # the same layer objects (a list: not registered a second time)
        self.output = output

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        for s in self.stages:
            x = s.relu(s.norm(upsample_pad_conv(x, s.upsample, s.pad, s.conv)))
        pad, conv, tanh = self.output
        return tanh(conv(pad(x)))


class Generator(nn.Layer):
    """Translate images of one domain into the other.

    Args:
        ch: channels of the first layer (`ngf`); the bottleneck has 4*ch.
        n_res: residual blocks in the encoder and in the decoder.
        img_size: input height = width; fixes the size of the full model's first MLP layer.
        light: take the MLP input from globally average-pooled features (small) instead of all
            (img_size/4)^2 * 4ch features (268M weights at 256 px, ch 64).
        variant: the official PyTorch networks (default) or the TF ones (`variant.py`): with `shared_cam` the
            two CAM classifiers are one, `cam_fc` (weight [4ch, 1], bias [1]), instead of `gap_fc`/`gmp_fc`.

    `forward(x [N, 3, S, S] in [-1, 1])` returns `(image [N, 3, S, S], cam_logit [N, 2], heatmap [N, 1, S/4, S/4])`.
    """

    def __init__(self, ch: int, n_res: int, img_size: int, light: bool, variant: Variant = OFFICIAL) -> None:
        super().__init__()
        self.ch, self.n_res, self.img_size, self.light, self.variant = ch, n_res, img_size, light, variant
        self.recompute = False  # encoder, AdaILN blocks and decoder recompute their activations in backward
        mult = 2**N_DOWNSAMPLING
        dim = ch * mult
        v, bias = variant, variant.biases

        down: list[nn.Layer] = [ReflectionPad2d(3), conv2d(3, ch, 7, bias=bias), _instance_norm(ch, v), nn.ReLU()]
        for i in range(N_DOWNSAMPLING):
            c = ch * 2**i
            down += [ReflectionPad2d(1), conv2d(c, 2 * c, 3, stride=2, bias=bias), _instance_norm(2 * c, v),
                     nn.ReLU()]
        down += [ResnetBlock(dim, v) for _ in range(n_res)]
        self.DownBlock = nn.Sequential(*down)

        # Class activation map: 1-logit classifiers whose weights also re-weight the channels.
        if v.shared_cam:
            self.cam_fc = linear(dim, 1, bias=True)
        else:
            self.gap_fc = linear(dim, 1)
            self.gmp_fc = linear(dim, 1)
        self.conv1x1 = conv2d(2 * dim, dim, 1, bias=True)
        self.relu = nn.ReLU()

        # MLP predicting the AdaILN gamma/beta.
        mlp_in = dim if light else (img_size // mult) ** 2 * dim
        self.FC = nn.Sequential(linear(mlp_in, dim, bias), nn.ReLU(), linear(dim, dim, bias), nn.ReLU())
        self.gamma = linear(dim, dim, bias)
        self.beta = linear(dim, dim, bias)

        for i in range(n_res):
            setattr(self, f"UpBlock1_{i + 1}", ResnetAdaILNBlock(dim, v))

        self.UpBlock2 = UpsamplingDecoder(ch, v)

    def cam_weights(self) -> tuple[paddle.Tensor, paddle.Tensor]:
        """The channel weights [C, 1] of the GAP and of the GMP half: each classifier's weight (official), or
        TF's shared (weight + bias) for both."""
        if self.variant.shared_cam:
            weight = self.cam_fc.weight + self.cam_fc.bias
            return weight, weight
        return self.gap_fc.weight, self.gmp_fc.weight

    def cam_logits(self, gap: paddle.Tensor, gmp: paddle.Tensor) -> paddle.Tensor:
        """cam_logit [N, 2] from the pooled features gap, gmp [N, C]."""
        if self.variant.shared_cam:
            return paddle.concat([self.cam_fc(gap), self.cam_fc(gmp)], axis=1)
        return paddle.concat([self.gap_fc(gap), self.gmp_fc(gmp)], axis=1)

    def forward(self, x: paddle.Tensor) -> tuple[paddle.Tensor, paddle.Tensor, paddle.Tensor]:
        x = run_block(self.DownBlock, x, recompute=self.recompute)  # [N, 4ch, S/4, S/4]

        gap, gmp = global_pools(x)  # [N, 4ch] each
        cam_logit = self.cam_logits(gap, gmp)  # [N, 2]
        x = self.relu(cam_conv1x1(x, self.conv1x1, *self.cam_weights()))  # [N, 4ch, S/4, S/4]
        heatmap = channel_sum(x)

        mlp_in = global_mean(x) if self.light else x.flatten(1)
        h = linear_in_float32(self.FC[0], mlp_in)  # FC.0, the largest layer of the full model: float32 under AMP
        for i in range(1, len(self.FC)):
            h = self.FC[i](h)
        gamma, beta = self.gamma(h), self.beta(h)  # [N, 4ch] each

        for i in range(self.n_res):
            x = run_block(getattr(self, f"UpBlock1_{i + 1}"), x, gamma, beta, recompute=self.recompute)
        return run_block(self.UpBlock2, x, recompute=self.recompute), cam_logit, heatmap
