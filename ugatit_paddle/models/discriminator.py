"""The U-GAT-IT discriminator (official `Discriminator`), a PatchGAN with CAM attention and spectral norm.

`n_layers` = 7 gives the official "global" discriminators (`disGA`, `disGB`), 5 the "local" ones
(`disLA`, `disLB`). Spectral norm advances `weight_u`/`weight_v` by one power iteration per forward in
train mode only, as PyTorch's does (see `spectral_norm.py`).
"""

from __future__ import annotations

import functools

import paddle
import paddle.nn as nn

from .layers import LeakyReLU, ReflectionPad2d, UnpaddedConv2D, cam_weighting, conv2d, global_max, linear
from .recompute import run_block
from .spectral_norm import normalise_before, spectral_norm
from .variant import OFFICIAL, ReflectionPadSides, Variant, stride1_padding


def output_size(img_size: int, n_layers: int, variant: Variant = OFFICIAL) -> int | None:
    """Side of the patch logits map for `img_size` inputs, or None if a layer cannot process that size.

    Each layer reflect-pads (by 1; the TF variant's stride-1 layers by 1 and 2) and applies a 4x4
    convolution: the first `n_layers - 2` with stride 2, then two with stride 1.
    """
    side = img_size
    pads = [(1, 1)] * (n_layers - 2) + [stride1_padding(variant)[2:]] * 2
    for stride, (before, after) in zip([2] * (n_layers - 2) + [1, 1], pads):
        if side <= max(before, after):  # reflection padding needs pad < side
            return None
        side = (side + before + after - 4) // stride + 1
    return side if side >= 1 else None


def heatmap_size(img_size: int, n_layers: int, variant: Variant = OFFICIAL) -> int | None:
    """Side of the CAM heatmap: the feature map before the last convolution (P + 1 official, P for TF)."""
    side = output_size(img_size, n_layers, variant)
    return None if side is None else side + 3 - sum(stride1_padding(variant)[2:])


class Discriminator(nn.Layer):
    """Classify real/fake per patch and, through CAM, per image.

    `forward(x [N, 3, S, S])` returns `(logits [N, 1, P, P], cam_logit [N, 2], heatmap [N, 1, P+1, P+1])`
    where P = `output_size(S, n_layers)` (6 for the global and 30 for the local discriminator at 256 px).
    The TF variant (`variant.py`) keeps the side in its stride-1 layers (heatmap [N, 1, P, P], P = 8 and 32
    at 256 px), has one shared CAM classifier `cam_fc` with a bias, and a bias on the last convolution.
    """

    def __init__(self, ch: int, n_layers: int, variant: Variant = OFFICIAL) -> None:
        super().__init__()
        if n_layers < 3:
            raise ValueError(f"a discriminator needs n_layers >= 3, got {n_layers}")
        self.ch, self.n_layers, self.variant = ch, n_layers, variant
        self.recompute = False  # the conv stack `model` recomputes its activations in backward
        _sn = spectral_norm if variant.spectral_norm else (lambda layer: layer)
        same = stride1_padding(variant)
        model: list[nn.Layer] = [ReflectionPad2d(1), _sn(conv2d(3, ch, 4, stride=2)), LeakyReLU(0.2)]
        for i in range(1, n_layers - 2):
            c = ch * 2 ** (i - 1)
            model += [ReflectionPad2d(1), _sn(conv2d(c, 2 * c, 4, stride=2)), LeakyReLU(0.2)]
        c = ch * 2 ** (n_layers - 3)
        model += [self._stride1_pad(same), _sn(conv2d(c, 2 * c, 4, stride=1)), LeakyReLU(0.2)]
        self.model = nn.Sequential(*model)

        dim = 2 * c
        if variant.shared_cam:
            self.cam_fc = _sn(linear(dim, 1, bias=True))
        else:
            self.gap_fc = _sn(linear(dim, 1))
            self.gmp_fc = _sn(linear(dim, 1))
        self.conv1x1 = conv2d(2 * dim, dim, 1, bias=True)
        self.leaky_relu = LeakyReLU(0.2)
        self.pad = self._stride1_pad(same)
        self.conv = _sn(conv2d(dim, 1, 4, stride=1, bias=variant.biases))

    @staticmethod
    def _stride1_pad(padding: tuple[int, int, int, int]) -> nn.Layer:
        return ReflectionPad2d(1) if padding == (1, 1, 1, 1) else ReflectionPadSides(padding)

    def forward(self, x: paddle.Tensor) -> tuple[paddle.Tensor, paddle.Tensor, paddle.Tensor]:
        x = self.features(x)
        gap, gmp = x.mean(axis=[2, 3]), global_max(x)  # gmp: grad to the first argmax, as torch
        if self.variant.shared_cam:
            # TF: one classifier for both logits; both halves weighted by (normalised weight + bias).
            cam_logit = paddle.concat([self.cam_fc(gap), self.cam_fc(gmp)], axis=1)
            weight = self.cam_fc.weight + self.cam_fc.bias
            x = paddle.concat([cam_weighting(x, weight), cam_weighting(x, weight)], axis=1)
        else:
            # The logits use the spectrally normalised weight, the channel weighting the raw `weight_orig`.
            cam_logit = paddle.concat([self.gap_fc(gap), self.gmp_fc(gmp)], axis=1)
            x = paddle.concat(
                [cam_weighting(x, self.gap_fc.weight_orig), cam_weighting(x, self.gmp_fc.weight_orig)], axis=1
            )
        x = self.leaky_relu(self.conv1x1(x))
        heatmap = x.sum(axis=1, keepdim=True)
        return self.conv(self.pad(x)), cam_logit, heatmap

    def features(self, x: paddle.Tensor) -> paddle.Tensor:
        """The conv stack `model`: x [N, 3, S, S] -> [N, 2^(n_layers-2) ch, P+1, P+1] (official).

        Spectral norm runs here, once per call (one power iteration in train mode), before the stack's pads,
        convolutions and activations, which use the normalised weights it returns; with `recompute` only those
        are run again in backward, with the same weights, and the u/v buffers advance once per forward.
        """
        weights = self._normalise_stack(x.shape)
        return run_block(functools.partial(self._apply_stack, weights), x, recompute=self.recompute)

    def _normalise_stack(self, x_shape: list[int]) -> list[tuple]:
        """Each convolution's normalised weights (`UnpaddedConv2D.weights`) for an input of shape `x_shape`."""
        shape, weights = list(x_shape), []
        for layer in self.model:
            if isinstance(layer, UnpaddedConv2D):
                normalise_before(layer, shape)
                weights.append(layer.weights())
                shape = layer.output_shape(shape)
            elif isinstance(layer, (ReflectionPad2d, ReflectionPadSides)):
                shape = _padded_shape(shape, layer.padding)
        return weights

    def _apply_stack(self, weights: list[tuple], x: paddle.Tensor) -> paddle.Tensor:
        """`model(x)` with the convolutions' weights given (from `_normalise_stack`), their pre-hooks not run."""
        convs = iter(weights)
        for layer in self.model:
            x = layer.convolve(x, *next(convs)) if isinstance(layer, UnpaddedConv2D) else layer(x)
        return x


def _padded_shape(shape: list[int], padding: int | tuple[int, int, int, int]) -> list[int]:
    """Shape [N, C, H, W] after reflection padding by `padding` (all sides, or (left, right, top, bottom))."""
    left, right, top, bottom = (padding,) * 4 if isinstance(padding, int) else padding
    n, c, h, w = shape
    return [n, c, h + top + bottom, w + left + right]
