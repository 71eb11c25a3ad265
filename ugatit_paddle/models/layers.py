"""Small building blocks shared by the generator and the discriminators (their CPU speed kernels are in
`cpu_kernels.py`).

Paddle's default initialisers differ from PyTorch's. U-GAT-IT trains from PyTorch's defaults, so every
convolution and linear layer here is created through `conv2d` / `linear`, which re-initialise the weights
exactly as `torch.nn.Conv2d` / `torch.nn.Linear` do: weight and bias uniform in
[-1/sqrt(fan_in), 1/sqrt(fan_in)] (kaiming_uniform with a=sqrt(5)).
"""

from __future__ import annotations

import math
from typing import Any

import paddle
import paddle.nn as nn
import paddle.nn.functional as F

from . import cpu_kernels


def _uniform(bound: float) -> paddle.ParamAttr:
    return paddle.ParamAttr(initializer=nn.initializer.Uniform(-bound, bound))


class UnpaddedConv2D(nn.Conv2D):
    """`nn.Conv2D` with padding 0 (padding is done by `ReflectionPad2d`); on CPU it computes through
    `cpu_kernels.conv2d`, elsewhere (GPUs, exported static graphs) through the plain convolution.

    `scaled_weight` (None, or a pair `(weight, scale)` with a scalar tensor `scale`): when set, the layer
    convolves with `weight * scale` instead of `self.weight`, computed as `conv(x, weight) * scale + bias`.
    Spectral normalisation sets it where the output is smaller than the weight (the discriminators' deep
    layers): scaling the output instead of the weight saves a full pass over the weight and its gradient at
    every forward. (A pair, not two attributes: a Paddle layer would register a parameter assigned to it.)
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.scaled_weight: tuple[paddle.Tensor, paddle.Tensor] | None = None

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        """x [N, C_in, H, W] -> [N, C_out, (H - k) / stride + 1, (W - k) / stride + 1]."""
        if self.scaled_weight is None:
            return self._convolve(x, self.weight, self.bias)
        weight, scale = self.scaled_weight
        out = self._convolve(x, weight, None) * scale
        return out if self.bias is None else out + self.bias.reshape([1, -1, 1, 1])

    def output_numel(self, x_shape: list[int]) -> int:
        """Number of elements of the output for an input of shape `x_shape` [N, C_in, H, W]."""
        n, _, h, w = x_shape
        k, s = self._kernel_size[0], self._stride[0]
        return n * self._out_channels * ((h - k) // s + 1) * ((w - k) // s + 1)

    def _convolve(self, x: paddle.Tensor, weight: paddle.Tensor, bias: paddle.Tensor | None) -> paddle.Tensor:
        if cpu_kernels.applies(x):
            return cpu_kernels.conv2d(x, weight, bias, self._stride[0])
        return F.conv2d(x, weight, bias, stride=self._stride)


def conv2d(in_ch: int, out_ch: int, kernel_size: int, stride: int = 1, bias: bool = True) -> UnpaddedConv2D:
    """A padding-free Conv2D initialised like `torch.nn.Conv2d` (padding is done by `ReflectionPad2d`)."""
    bound = 1.0 / math.sqrt(in_ch * kernel_size * kernel_size)
    return UnpaddedConv2D(
        in_ch, out_ch, kernel_size, stride=stride, padding=0,
        weight_attr=_uniform(bound), bias_attr=_uniform(bound) if bias else False,
    )


def linear(in_features: int, out_features: int, bias: bool = False) -> nn.Linear:
    """A Linear layer (weight [in, out], Paddle's layout) initialised like `torch.nn.Linear`."""
    bound = 1.0 / math.sqrt(in_features)
    return nn.Linear(in_features, out_features, weight_attr=_uniform(bound), bias_attr=_uniform(bound) if bias else False)


class ReflectionPad2d(nn.Layer):
    """`torch.nn.ReflectionPad2d`: reflect-pad all four sides of an NCHW tensor by `padding` (on CPU by
    `cpu_kernels.reflection_pad`; exported graphs pad by slices: `inference/inference_generator.py`)."""

    def __init__(self, padding: int) -> None:
        super().__init__()
        self.padding = padding

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        """x [N, C, H, W] -> [N, C, H + 2p, W + 2p]."""
        p = self.padding
        if p == 0:
            return x
        h, w = x.shape[2:]
        if p >= min(h, w):
            raise ValueError(f"reflection padding {p} needs sides larger than {p}, got {h}x{w}")
        if cpu_kernels.applies(x):
            return cpu_kernels.reflection_pad(x, p)
        return F.pad(x, [p, p, p, p], mode="reflect")


class NearestUpsample2x(nn.Layer):
    """`nn.Upsample(scale_factor=2, mode="nearest")` on NCHW: each pixel repeated 2x2.

    On CPU by `cpu_kernels.upsample_nearest2x`; exported graphs fold it into the convolution that follows
    (`inference/inference_generator.py`).
    """

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        """x [N, C, H, W] -> [N, C, 2H, 2W]."""
        if cpu_kernels.applies(x):
            return cpu_kernels.upsample_nearest2x(x)
        return F.interpolate(x, scale_factor=2, mode="nearest")


def add_scalar(x: paddle.Tensor, value: float) -> paddle.Tensor:
    """`x + value` with `value` in x's dtype. Paddle 2.6 adds a Python float through a float32 attribute, so in
    float64 `x + 1e-5` there adds 1e-5 rounded to float32 (9.99999975e-6); float64 adds a 0-d float64 tensor
    instead. Other dtypes keep `x + value` (exported float32 graphs unchanged: Paddle 2.6's oneDNN predictor
    cannot take the 0-d tensor there)."""
    if x.dtype == paddle.float64:
        return x + paddle.full([], value, dtype=x.dtype)
    return x + value


class LeakyReLU(nn.Layer):
    """`torch.nn.LeakyReLU(negative_slope)`: x for x > 0, else `negative_slope` * x (and so its gradient).

    Paddle's kernel in float32/float16; in float64 as `where(x > 0, x, x * slope)`, because Paddle 2.6's kernel
    holds the slope as a float32 attribute (0.2 -> 0.200000003: 1.5e-8 relative on every negative value, and in
    the gradient), which the float64 parity checks see.
    """

    def __init__(self, negative_slope: float) -> None:
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        """x of any shape -> the same shape."""
        if x.dtype == paddle.float64:
            return paddle.where(x > 0, x, x * self.negative_slope)
        return F.leaky_relu(x, self.negative_slope)


def instance_norm(ch: int) -> nn.InstanceNorm2D:
    """`torch.nn.InstanceNorm2d(ch)`: no affine parameters, biased variance, eps 1e-5."""
    return nn.InstanceNorm2D(ch, epsilon=1e-5, weight_attr=False, bias_attr=False)


def cam_weighting(x: paddle.Tensor, fc_weight: paddle.Tensor) -> paddle.Tensor:
    """Weight the channels of `x` [N, C, H, W] by a CAM classifier's weight ([C, 1], Paddle layout)."""
    return x * fc_weight.reshape([1, -1, 1, 1])
