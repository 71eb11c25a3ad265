"""Small building blocks shared by the generator and the discriminators.

Paddle's default initialisers differ from PyTorch's. U-GAT-IT trains from PyTorch's defaults, so every
convolution and linear layer here is created through `conv2d` / `linear`, which re-initialise the weights
exactly as `torch.nn.Conv2d` / `torch.nn.Linear` do: weight and bias uniform in
[-1/sqrt(fan_in), 1/sqrt(fan_in)] (kaiming_uniform with a=sqrt(5)).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
import paddle
import paddle.nn as nn
import paddle.nn.functional as F


def _uniform(bound: float) -> paddle.ParamAttr:
    return paddle.ParamAttr(initializer=nn.initializer.Uniform(-bound, bound))


class UnpaddedConv2D(nn.Conv2D):
    """`nn.Conv2D` with padding 0 that picks the fastest of three equivalent CPU computations.

    Paddle's CPU convolution gathers the input into a [C_in * k * k, H * W] column matrix (im2col) and
    multiplies. A stride-1 convolution is also a transposed convolution of the same input with the kernel
    flipped and its channel axes swapped, cropped by k - 1 on each side; Paddle computes that one by a
    multiplication into [C_out * k * k, H * W] columns that it scatters back (col2im). When C_out < C_in
    (the decoder's up-sampling convolutions, the 7x7 output convolution, the discriminators' last layer)
    the second matrix is smaller: 1.6x to 8x faster forward and backward on CPU, same values to
    float32 rounding (about 1e-6 relative). A large weight at few output pixels runs as one matrix product
    on unfolded patches (`_conv_as_matmul`, see `MATMUL_MAX_PIXELS`). Elsewhere, on GPUs and in exported
    (static) graphs, which may run on a GPU or with oneDNN, the plain convolution runs.

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
        c_out, c_in, k, _ = weight.shape
        on_cpu = paddle.in_dynamic_mode() and x.place.is_cpu_place()
        if not on_cpu:
            return F.conv2d(x, weight, bias, stride=self._stride)
        h, w = x.shape[2:]
        s = self._stride[0]
        out_h, out_w = (h - k) // s + 1, (w - k) // s + 1
        if out_h * out_w <= MATMUL_MAX_PIXELS and weight.size >= MATMUL_MIN_WEIGHT:
            return _conv_as_matmul(x, weight, bias, s, out_h, out_w)
        if c_out < c_in and k > 1 and s == 1:
            kernel = weight.flip([2, 3]).transpose([1, 0, 2, 3])
            return F.conv2d_transpose(x, kernel, bias, padding=k - 1)
        return F.conv2d(x, weight, bias, stride=self._stride)


# A large weight applied at few output pixels (the global discriminators' deepest layers below 256 px): one
# [N*L, C_in*k*k] x [C_in*k*k, C_out] product on unfolded patches beats Paddle's CPU convolution 1.4-2.2x
# forward and backward, whose input gradient multiplies by the transposed weight (a slow MKL path for this
# shape). Measured at L = 4..225 output pixels: faster up to 16, slower from 49 on and for small weights.
MATMUL_MAX_PIXELS = 16
MATMUL_MIN_WEIGHT = 2**20


def _conv_as_matmul(x: paddle.Tensor, weight: paddle.Tensor, bias: paddle.Tensor | None, stride: int,
                    out_h: int, out_w: int) -> paddle.Tensor:
    """conv2d(x [N, C_in, H, W], weight [C_out, C_in, k, k], stride, no padding) -> [N, C_out, out_h, out_w]."""
    n, c_in, h, w = x.shape
    c_out, _, k, _ = weight.shape
    patches = F.unfold(x, k, strides=stride) if k > 1 else x.reshape([n, c_in, h * w])  # [N, C_in*k*k, L]
    rows = patches.transpose([0, 2, 1]).reshape([n * out_h * out_w, -1])
    out = paddle.matmul(rows, weight.reshape([c_out, -1]), transpose_y=True)  # [N*L, C_out]
    if bias is not None:
        out = out + bias
    return out.reshape([n, out_h, out_w, c_out]).transpose([0, 3, 1, 2])


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


def gather_planes(x: paddle.Tensor, index: np.ndarray, out_h: int, out_w: int) -> paddle.Tensor:
    """Re-index every [H, W] plane of `x` [N, C, H, W]: plane_out.flat[i] = plane.flat[index[i]] -> [N, C, out_h, out_w].

    One `gather` (its gradient one scatter-add), which on CPU beats Paddle's `pad3d`, `nearest_interp` and
    slice/concat/expand compositions by 1.2-3x, forward and backward. Where `gather`'s gradient is wrong
    (Paddle 2.6 along the last axis: every outer slice receives the first slice's gradient), `index_select` runs
    instead: the same values and correct gradients, about 6x slower.
    """
    n, c, h, w = x.shape
    correct = not paddle.in_dynamic_mode() or gather_gradient_is_correct()  # (no gradients to check in a static graph)
    select = paddle.gather if correct else paddle.index_select
    planes = select(x.reshape([n, c, h * w]), paddle.to_tensor(index), axis=2)
    return planes.reshape([n, c, out_h, out_w])


@functools.lru_cache(maxsize=1)
def gather_gradient_is_correct() -> bool:
    """Whether `paddle.gather` along the last axis of a [2, 2] tensor, with a repeated index, has the right
    gradient (checked once per process)."""
    with paddle.set_grad_enabled(True):  # also when first called under paddle.no_grad()
        x = paddle.ones([2, 2], dtype="float32")
        x.stop_gradient = False
        upstream = paddle.to_tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
        (grad,) = paddle.grad(paddle.gather(x, paddle.to_tensor([1, 0, 1]), axis=1), x, upstream)
    return grad.numpy().tolist() == [[2.0, 4.0], [5.0, 10.0]]


@functools.lru_cache(maxsize=64)
def reflection_index(h: int, w: int, p: int) -> np.ndarray:
    """`gather_planes` indices that reflect-pad an [H, W] plane by `p` on each side."""
    rows = np.concatenate([np.arange(p, 0, -1), np.arange(h), np.arange(h - 2, h - 2 - p, -1)])
    cols = np.concatenate([np.arange(p, 0, -1), np.arange(w), np.arange(w - 2, w - 2 - p, -1)])
    return (rows[:, None] * w + cols[None, :]).reshape(-1)


@functools.lru_cache(maxsize=64)
def upsample_index(h: int, w: int) -> np.ndarray:
    """`gather_planes` indices that repeat each pixel of an [H, W] plane 2x2."""
    return ((np.arange(2 * h) // 2)[:, None] * w + (np.arange(2 * w) // 2)[None, :]).reshape(-1)


class ReflectionPad2d(nn.Layer):
    """`torch.nn.ReflectionPad2d`: reflect-pad all four sides of an NCHW tensor by `padding` (same values as
    `nn.Pad2D(mode="reflect")`), by `gather_planes`. (Exported graphs pad by slices: `inference_generator.py`.)"""

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
        return gather_planes(x, reflection_index(h, w, p), h + 2 * p, w + 2 * p)


class NearestUpsample2x(nn.Layer):
    """`nn.Upsample(scale_factor=2, mode="nearest")` on NCHW: each pixel repeated 2x2.

    Same values as `nearest_interp`, by `gather_planes` (about 2-4x faster on CPU than `nearest_interp`, forward
    and backward). Exported graphs fold it into the convolution that follows (`inference_generator.py`).
    """

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        """x [N, C, H, W] -> [N, C, 2H, 2W]."""
        h, w = x.shape[2:]
        return gather_planes(x, upsample_index(h, w), 2 * h, 2 * w)


def instance_norm(ch: int) -> nn.InstanceNorm2D:
    """`torch.nn.InstanceNorm2d(ch)`: no affine parameters, biased variance, eps 1e-5."""
    return nn.InstanceNorm2D(ch, epsilon=1e-5, weight_attr=False, bias_attr=False)


def cam_weighting(x: paddle.Tensor, fc_weight: paddle.Tensor) -> paddle.Tensor:
    """Weight the channels of `x` [N, C, H, W] by a CAM classifier's weight ([C, 1], Paddle layout)."""
    return x * fc_weight.reshape([1, -1, 1, 1])
