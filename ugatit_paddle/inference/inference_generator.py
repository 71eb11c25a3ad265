"""The generator as exported for Paddle Inference: `Generator.forward` rewritten in the forms Paddle
Inference runs fastest, with oneDNN in particular (`tools/export_model.py` saves this, not the generator).

Same function, same weights (this layer holds the generator and reads its parameters); what differs is
how each step is spelt, chosen by measuring the exported graph on CPU with and without oneDNN:

- Reflection padding by slices, flips and a concat: oneDNN runs these natively; it has no kernel for
  `gather` (the dygraph form) or `pad3d`, which would convert layouts around them.
- Nearest 2x up-sampling, reflection padding and the 3x3 convolution after it are one stride-2
  transposed convolution with a 4x4 kernel on the edge-padded input (the 3x3 kernel combined with the
  2x2 up-sampling box): 4 instead of 9 multiply-adds per output pixel and no up-sampled tensor. Edge
  padding, because reflect-padding the up-sampled image by one pixel repeats its border pixel, which is
  the input's border pixel.
- ILN/AdaILN on each flattened [C, H * W] plane, as `d * a + b` of the centred values `d` (one
  multiply-add, the residual connection and ReLU folded in); the statistics as in `norms.py` (centred
  squares, layer statistics from the channel ones), accurate to float32 rounding.
- The CAM channel weighting folded into the 1x1 convolution's weights (`conv(concat(x * wa, x * wb))` is
  `conv(x)` with weights `W[:, :C] * wa + W[:, C:] * wb`), the heatmap's channel sum as a 1x1 convolution
  of ones, means and maxima over flattened planes (a reduction over a oneDNN convolution's blocked output
  is several times slower).

Weight-only expressions (the combined kernels) are folded into constants when Paddle Inference loads the
model. Results agree with `Generator.forward` to float32 rounding: tests/test_inference_generator.py
compares them in float64, tests/test_export.py compares the exported model (with and without oneDNN) with
the generator, and `tools/parity.py --precision` measures both against a float64 evaluation.
Squares are written `d * d`, not `d.square()`: Paddle 3.3's oneDNN inplace pass makes `square` an in-place
`square_` that overwrites `d` while a later op still reads it.
"""

from __future__ import annotations

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from ..models.generator import N_DOWNSAMPLING, Generator, ResnetAdaILNBlock, ResnetBlock
from ..models.layers import NearestUpsample2x, ReflectionPad2d, UnpaddedConv2D, add_scalar
from ..models.norms import EPS, ILN


def reflection_pad(x: paddle.Tensor, p: int) -> paddle.Tensor:
    """`ReflectionPad2d(p)` by slices, flips and concats. x [N, C, H, W] -> [N, C, H + 2p, W + 2p]."""
    h, w = x.shape[2:]
    for axis, side in ((2, h), (3, w)):
        before = paddle.slice(x, [axis], [1], [p + 1])
        after = paddle.slice(x, [axis], [side - p - 1], [side - 1])
        if p > 1:
            before, after = before.flip(axis), after.flip(axis)
        x = paddle.concat([before, x, after], axis=axis)
    return x


def edge_pad1(x: paddle.Tensor) -> paddle.Tensor:
    """Repeat the border pixels once on each side. x [N, C, H, W] -> [N, C, H + 2, W + 2]."""
    h, w = x.shape[2:]
    for axis, side in ((2, h), (3, w)):
        first = paddle.slice(x, [axis], [0], [1])
        last = paddle.slice(x, [axis], [side - 1], [side])
        x = paddle.concat([first, x, last], axis=axis)
    return x


def _combine_taps(weight: paddle.Tensor, axis: int) -> paddle.Tensor:
    """The 3 taps (w0, w1, w2) of `weight` along `axis` -> 4 taps (w2, w1 + w2, w0 + w1, w0)."""
    w0, w1, w2 = (paddle.slice(weight, [axis], [i], [i + 1]) for i in range(3))
    return paddle.concat([w2, w1 + w2, w0 + w1, w0], axis=axis)


def upsample_conv3x3(x: paddle.Tensor, weight: paddle.Tensor, bias: paddle.Tensor | None = None) -> paddle.Tensor:
    """`conv3x3(ReflectionPad2d(1)(NearestUpsample2x(x)), weight)` as one transposed convolution.

    x [N, C, H, W], weight [O, C, 3, 3], bias [O] or None -> [N, O, 2H, 2W]. Output row 2i + a sums kernel rows over input rows
    (i - 1, i) for a = 0 and (i, i + 1) for a = 1, with the rows' weights combined as in `_combine_taps`.
    """
    kernel = _combine_taps(_combine_taps(weight, 2), 3).transpose([1, 0, 2, 3])  # [C, O, 4, 4]
    return F.conv2d_transpose(edge_pad1(x), kernel, bias, stride=2, padding=3)


def _variance_plus_eps(squares: paddle.Tensor, count: int) -> paddle.Tensor:
    """`squares / count + EPS`: one `scale` op, or in float64 (tests) with EPS added exactly, as `norms.py` does
    (Paddle 2.6's `scale` holds its bias as float32; see `layers.add_scalar`)."""
    if squares.dtype == paddle.float64:
        return add_scalar(squares * (1.0 / count), EPS)
    return paddle.scale(squares, 1.0 / count, bias=EPS)


def iln(x: paddle.Tensor, rho: paddle.Tensor, gamma: paddle.Tensor, beta: paddle.Tensor,
        residual: paddle.Tensor | None = None, relu: bool = False, unbiased: bool = True) -> paddle.Tensor:
    """`rho * IN(x) + (1 - rho) * LN(x)`, times `gamma`, plus `beta` (see norms.py), [+ residual], [ReLU].
    Unbiased variance as torch.var, or biased (`unbiased=False`, the TF variant).

    x, residual [N, C, H, W]; rho [1, C, 1, 1]; gamma, beta [N, C, 1] (AdaILN) or [1, C, 1] (ILN) ->
    [N, C, H, W].
    """
    c, h, w = x.shape[1:]
    hw = h * w
    planes = x.reshape([-1, c, hw])
    mean = planes.mean(axis=2, keepdim=True)  # [N, C, 1]
    d = planes - mean
    in_sq = (d * d).sum(axis=2, keepdim=True)  # per-channel squared deviations
    ln_mean = mean.mean(axis=1, keepdim=True)  # [N, 1, 1]
    mean_dev = mean - ln_mean
    ln_sq = (in_sq + hw * (mean_dev * mean_dev)).sum(axis=1, keepdim=True)  # Chan's parallel formula
    ddof = 1 if unbiased else 0
    in_inv_std = paddle.rsqrt(_variance_plus_eps(in_sq, hw - ddof))
    ln_inv_std = paddle.rsqrt(_variance_plus_eps(ln_sq, c * hw - ddof))
    rho = rho.reshape([1, c, 1])
    ln_scale = (1 - rho) * ln_inv_std
    # in_scale = rho * in_inv_std, x = d + mean:
    # x * (in_scale + ln_scale) - mean * in_scale - ln_mean * ln_scale = d * (in_scale + ln_scale) + mean_dev * ln_scale
    out = d * ((rho * in_inv_std + ln_scale) * gamma) + (mean_dev * ln_scale * gamma + beta)
    if residual is not None:
        out = out + residual.reshape([-1, c, hw])
    if relu:
        out = F.relu(out)
    return out.reshape([-1, c, h, w])


class InferenceGenerator(nn.Layer):
    """`generator`'s forward in the forms above; holds `generator` (and so its parameters) as a sub-layer.

    `forward(x [N, 3, S, S])` returns `(image [N, 3, S, S], cam_logit [N, 2], heatmap [N, 1, S/4, S/4])`.
    """

    def __init__(self, generator: Generator) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, x: paddle.Tensor) -> tuple[paddle.Tensor, paddle.Tensor, paddle.Tensor]:
        g = self.generator
        x = self._encode(x)  # [N, C, S/4, S/4]
        c, h, w = x.shape[1:]
        planes = x.reshape([-1, c, h * w])
        cam_logit = g.cam_logits(planes.mean(axis=2), planes.max(axis=2))  # [N, 2]

        conv_w = g.conv1x1.weight  # [C, 2C, 1, 1] over concat(x * gap weight, x * gmp weight)
        gap_w, gmp_w = (w.reshape([1, c, 1, 1]) for w in g.cam_weights())
        cam_w = conv_w[:, :c] * gap_w + conv_w[:, c:] * gmp_w
        x = F.relu(F.conv2d(x, cam_w, g.conv1x1.bias))
        heatmap = F.conv2d(x, paddle.ones([1, c, 1, 1], dtype=x.dtype))  # channel sum, [N, 1, S/4, S/4]

        mlp_in = x.reshape([-1, c, h * w]).mean(axis=2) if g.light else x.flatten(1)
        hidden = g.FC(mlp_in)
        gamma, beta = g.gamma(hidden).reshape([-1, c, 1]), g.beta(hidden).reshape([-1, c, 1])
        for i in range(g.n_res):
            x = self._adailn_block(getattr(g, f"UpBlock1_{i + 1}"), x, gamma, beta)
        return self._decode(x), cam_logit, heatmap

    def _encode(self, x: paddle.Tensor) -> paddle.Tensor:
        def run(layers: nn.Sequential, x: paddle.Tensor) -> paddle.Tensor:
            for layer in layers:
                if isinstance(layer, ReflectionPad2d):
                    x = reflection_pad(x, layer.padding)
                elif isinstance(layer, ResnetBlock):
                    x = x + run(layer.conv_block, x)
                else:  # convolution, instance norm, ReLU
                    x = layer(x)
            return x

        return run(self.generator.DownBlock, x)

    @staticmethod
    def _adailn_block(block: ResnetAdaILNBlock, x: paddle.Tensor, gamma: paddle.Tensor,
                      beta: paddle.Tensor) -> paddle.Tensor:
        n1, n2 = block.norm1, block.norm2
        out = iln(block.conv1(reflection_pad(x, 1)), n1.mixing_rho(), gamma, beta, relu=True, unbiased=n1.unbiased)
        return iln(block.conv2(reflection_pad(out, 1)), n2.mixing_rho(), gamma, beta, residual=x, unbiased=n2.unbiased)

    def _decode(self, x: paddle.Tensor) -> paddle.Tensor:
        layers = list(self.generator.UpBlock2)
        for i in range(N_DOWNSAMPLING):  # [NearestUpsample2x, ReflectionPad2d(1), conv 3x3, ILN, ReLU] each
            up, pad, conv, norm, _ = layers[5 * i:5 * i + 5]
            assert isinstance(up, NearestUpsample2x) and pad.padding == 1 and isinstance(norm, ILN)
            gamma, beta = norm.gamma.reshape([1, -1, 1]), norm.beta.reshape([1, -1, 1])
            x = iln(upsample_conv3x3(x, conv.weight, conv.bias), norm.rho, gamma, beta, relu=True,
                    unbiased=norm.unbiased)
        pad, conv, _ = layers[-3:]  # ReflectionPad2d(3), conv 7x7, Tanh
        assert isinstance(conv, UnpaddedConv2D)
        return paddle.tanh(conv(reflection_pad(x, pad.padding)))
