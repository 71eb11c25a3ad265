"""Small building blocks shared by the generator and the discriminators, and the one place where their
spelling is chosen: in dynamic mode on a CPU the speed kernels of `cpu_kernels.py`, in static graphs (the
exported generator) the forms of `static_forms.py`, elsewhere (GPUs) the plain Paddle ops. The blocks of
`generator.py` and `discriminator.py` are built from these and are the same in all three cases.

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

from . import cpu_kernels, static_forms


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
        return self.convolve(x, *self.weights())

    def weights(self) -> tuple[paddle.Tensor | None, tuple[paddle.Tensor, paddle.Tensor] | None]:
        """What `forward` convolves with now: `(weight, None)` or `(None, scaled_weight)`."""
        return (None, self.scaled_weight) if self.scaled_weight is not None else (self.weight, None)

    def convolve(self, x: paddle.Tensor, weight: paddle.Tensor | None,
                 scaled_weight: tuple[paddle.Tensor, paddle.Tensor] | None) -> paddle.Tensor:
        """`forward` with explicit weights (a pair from `weights()`), as recomputation replays it in backward."""
        if scaled_weight is None:
            return self._convolve(x, weight, self.bias)
        weight, scale = scaled_weight
        out = self._convolve(x, weight, None) * scale
        return out if self.bias is None else out + self.bias.reshape([1, -1, 1, 1])

    def output_shape(self, x_shape: list[int]) -> list[int]:
        """Shape [N, C_out, H', W'] of the output for an input of shape `x_shape` [N, C_in, H, W]."""
        n, _, h, w = x_shape
        k, s = self._kernel_size[0], self._stride[0]
        return [n, self._out_channels, (h - k) // s + 1, (w - k) // s + 1]

    def output_numel(self, x_shape: list[int]) -> int:
        """Number of elements of the output for an input of shape `x_shape` [N, C_in, H, W]."""
        return math.prod(self.output_shape(x_shape))

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


def linear_in_float32(layer: nn.Linear, x: paddle.Tensor) -> paddle.Tensor:
    """`layer(x)` computed in the weight's dtype also inside `paddle.amp.auto_cast`: there O1 would cast the
    weight to float16 at every call and keep that copy for backward (the full model's `FC.0`: 268M weights,
    537 MB per generator call, about 3 GB over a G step). x [N, in] in any float dtype -> [N, out]."""
    with paddle.amp.auto_cast(enable=False):
        if x.dtype != layer.weight.dtype:
            x = x.astype(layer.weight.dtype)
        return F.linear(x, layer.weight, layer.bias)


def deterministic_mode() -> bool:
    """Paddle's `FLAGS_cudnn_deterministic` (set by `train.deterministic`); False where this Paddle has no such
    flag (CPU builds, which are deterministic anyway)."""
    try:
        return bool(paddle.get_flags("FLAGS_cudnn_deterministic")["FLAGS_cudnn_deterministic"])
    except ValueError:
        return False


class ReflectionPad2d(nn.Layer):
    """`torch.nn.ReflectionPad2d`: reflect-pad all four sides of an NCHW tensor by `padding` (on CPU by
    `cpu_kernels.reflection_pad`; static graphs and deterministic mode pad by slices: `static_forms.reflection_pad`)."""

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
        if not paddle.in_dynamic_mode() or deterministic_mode():
            return static_forms.reflection_pad(x, p)
        return F.pad(x, [p, p, p, p], mode="reflect")


class NearestUpsample2x(nn.Layer):
    """`nn.Upsample(scale_factor=2, mode="nearest")` on NCHW: each pixel repeated 2x2.

    On CPU by `cpu_kernels.upsample_nearest2x`; static graphs fold it into the convolution that follows
    (`upsample_pad_conv`).
    """

    def forward(self, x: paddle.Tensor) -> paddle.Tensor:
        """x [N, C, H, W] -> [N, C, 2H, 2W]."""
        if cpu_kernels.applies(x):
            return cpu_kernels.upsample_nearest2x(x)
        return F.interpolate(x, scale_factor=2, mode="nearest")


def scalar(value: float, like: paddle.Tensor) -> float | paddle.Tensor:
    """`value` as an operand for `like`. Paddle keeps a Python number operand as a float32 attribute (in static
    graphs on every version; in dynamic `+` and `/` on Paddle 2.6: 1e-5 becomes 9.99999975e-6), which the float64
    parity checks see: in float64 it is a tensor of `like`'s dtype. Other dtypes keep the number (with tensor
    operands Paddle 3.3's oneDNN executor computes wrong values and Paddle 2.6's oneDNN predictor fails on
    exported float32 graphs)."""
    if like.dtype != paddle.float64:
        return value
    return paddle.full([1], value, dtype=like.dtype)


def add_scalar(x: paddle.Tensor, value: float) -> paddle.Tensor:
    """`x + value` with `value` in x's dtype (see `scalar`)."""
    return x + scalar(value, x)


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


def upsample_pad_conv(x: paddle.Tensor, upsample: NearestUpsample2x, pad: ReflectionPad2d,
                      conv: UnpaddedConv2D) -> paddle.Tensor:
    """`conv(pad(upsample(x)))` for a 3x3 `conv` after 1-pixel padding: x [N, C, H, W] -> [N, C_out, 2H, 2W].
    In static graphs one transposed convolution (`static_forms.upsample_conv3x3`), on CPU in dynamic mode
    `cpu_kernels.upsample_conv3x3` (that transposed convolution on large planes, else one gather and the
    convolution)."""
    if pad.padding != 1 or conv._kernel_size[0] != 3 or conv._stride[0] != 1 or conv.scaled_weight is not None:
        raise ValueError("upsample_pad_conv needs 1-pixel padding and an unscaled 3x3 stride-1 convolution")
    if not paddle.in_dynamic_mode():
        return static_forms.upsample_conv3x3(x, conv.weight, conv.bias)
    if cpu_kernels.applies(x):
        return cpu_kernels.upsample_conv3x3(x, conv.weight, conv.bias)
    return conv(pad(upsample(x)))


def global_pools(x: paddle.Tensor) -> tuple[paddle.Tensor, paddle.Tensor]:
    """Global average and max pooling of x [N, C, H, W] -> (gap [N, C], gmp [N, C]); gmp is `global_max`."""
    return global_mean(x), global_max(x)


def global_max(x: paddle.Tensor) -> paddle.Tensor:
    """Maximum of each channel of x [N, C, H, W] -> [N, C], its gradient going to the first maximum of the
    plane, as torch's adaptive max pooling does (ties included).

    Spelled as an argmax and a gather (`take_along_axis`), not `F.adaptive_max_pool2d`: Paddle's max-pool
    gradient writes out of bounds for a plane holding NaN (its argmax index is never set), while an argmax index
    is always inside the plane, so a backward through NaN activations is safe. A NaN that is not the argmax is
    skipped here (the pool would return NaN); the loss is NaN anyway through the average pool of the same plane."""
    if not paddle.in_dynamic_mode():
        return static_forms.plane_max(x)
    flat = x.flatten(2)  # [N, C, H*W]
    first_max = flat.argmax(axis=2, keepdim=True)  # [N, C, 1]
    return paddle.take_along_axis(flat, first_max, axis=2).squeeze(2)


def global_mean(x: paddle.Tensor) -> paddle.Tensor:
    """Mean of each channel of x [N, C, H, W] -> [N, C]."""
    return x.mean(axis=[2, 3]) if paddle.in_dynamic_mode() else static_forms.plane_mean(x)


def channel_sum(x: paddle.Tensor) -> paddle.Tensor:
    """Sum over the channels of x [N, C, H, W] -> [N, 1, H, W]."""
    return x.sum(axis=1, keepdim=True) if paddle.in_dynamic_mode() else static_forms.channel_sum(x)


def cam_conv1x1(x: paddle.Tensor, conv: UnpaddedConv2D, gap_weight: paddle.Tensor,
                gmp_weight: paddle.Tensor) -> paddle.Tensor:
    """`conv(concat([x * gap_weight, x * gmp_weight]))`: the generator's CAM-weighted features [N, C, H, W]
    through its 1x1 convolution (weight [C, 2C, 1, 1]); gap_weight/gmp_weight [C, 1]. Static graphs fold the
    channel weights into the convolution's weights (`static_forms.cam_conv1x1`)."""
    if paddle.in_dynamic_mode():
        return conv(paddle.concat([cam_weighting(x, gap_weight), cam_weighting(x, gmp_weight)], axis=1))
    return static_forms.cam_conv1x1(x, conv.weight, conv.bias, gap_weight, gmp_weight)
