"""Static-graph forms of the generator's steps: what the blocks compute when `paddle.jit.save` traces them into
the exported model (`inference/export.py`), spelt the way Paddle Inference runs fastest, with oneDNN in
particular. `layers.py` (and `norms.mix_norm`) pick these in static graphs, the CPU kernels of
`cpu_kernels.py` in dynamic mode on a CPU, and the plain Paddle ops otherwise; the blocks are the same.

Chosen by measuring the exported graph on CPU with and without oneDNN:

- Reflection padding by slices, flips and a concat (`reflection_pad`): oneDNN runs these natively; it has no
  kernel for `gather` (the CPU-kernel form) or `pad3d`, which would convert layouts around them.
- Nearest 2x up-sampling, reflection padding and the 3x3 convolution after it as one stride-2 transposed
  convolution with a 4x4 kernel on the edge-padded input (`upsample_conv3x3`: the 3x3 kernel combined with the
  2x2 up-sampling box): 4 instead of 9 multiply-adds per output pixel and no up-sampled tensor; and no
  `nearest_interp`, which Paddle 3.3's oneDNN executor cannot run. Edge padding, because reflect-padding the
  up-sampled image by one pixel repeats its border pixel, which is the input's border pixel.
- The CAM channel weighting folded into the 1x1 convolution's weights (`cam_conv1x1`), the heatmap's channel
  sum as a 1x1 convolution of ones (`channel_sum`), means and maxima over flattened planes (`plane_mean`,
  `plane_max`; ILN/AdaILN statistics too, `norms.py`): a reduction over a oneDNN convolution's blocked output
  is several times slower.

Weight-only expressions (the combined kernels) are folded into constants when Paddle Inference loads the
model. Same function as the dynamic forms to float32 rounding (tests/test_inference_generator.py in float64,
tests/test_export.py on the exported model).
"""

from __future__ import annotations

import paddle
import paddle.nn.functional as F


def reflection_pad(x: paddle.Tensor, p: int) -> paddle.Tensor:
    """`ReflectionPad2d(p)` by slices, flips and concats. x [N, C, H, W] -> [N, C, H + 2p, W + 2p].

    Its backward adds the gradients of the slices in a fixed order, where the `pad3d` kernel's reflect backward
    on a GPU adds with atomics (sums in a varying order): also used in deterministic mode (`layers.py`)."""
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

    x [N, C, H, W], weight [O, C, 3, 3], bias [O] or None -> [N, O, 2H, 2W]. Output row 2i + a sums kernel rows
    over input rows (i - 1, i) for a = 0 and (i, i + 1) for a = 1, with the rows' weights combined as in
    `_combine_taps`.
    """
    return F.conv2d_transpose(edge_pad1(x), upsample_conv3x3_kernel(weight), bias, stride=2, padding=3)


def upsample_conv3x3_kernel(weight: paddle.Tensor) -> paddle.Tensor:
    """The transposed-convolution kernel of `upsample_conv3x3`: weight [O, C, 3, 3] -> [C, O, 4, 4] (to run with
    stride 2 and padding 3 on the edge-padded input)."""
    return _combine_taps(_combine_taps(weight, 2), 3).transpose([1, 0, 2, 3])


def cam_conv1x1(x: paddle.Tensor, weight: paddle.Tensor, bias: paddle.Tensor | None, gap_weight: paddle.Tensor,
                gmp_weight: paddle.Tensor) -> paddle.Tensor:
    """`conv1x1(concat([x * gap_weight, x * gmp_weight]))` as one convolution of `x`: x [N, C, H, W], weight
    [C, 2C, 1, 1], gap_weight/gmp_weight [C, 1] -> [N, C, H, W] (weights `W[:, :C] * wa + W[:, C:] * wb`)."""
    c = x.shape[1]
    folded = weight[:, :c] * gap_weight.reshape([1, c, 1, 1]) + weight[:, c:] * gmp_weight.reshape([1, c, 1, 1])
    return F.conv2d(x, folded, bias)


def plane_mean(x: paddle.Tensor) -> paddle.Tensor:
    """Mean of each [H, W] plane over the flattened plane: x [N, C, H, W] -> [N, C]."""
    return x.flatten(2).mean(axis=2)


def plane_max(x: paddle.Tensor) -> paddle.Tensor:
    """Maximum of each [H, W] plane over the flattened plane: x [N, C, H, W] -> [N, C]."""
    return x.flatten(2).max(axis=2)


def channel_sum(x: paddle.Tensor) -> paddle.Tensor:
    """Sum over the channels as a 1x1 convolution of ones: x [N, C, H, W] -> [N, 1, H, W]."""
    return F.conv2d(x, paddle.ones([1, x.shape[1], 1, 1], dtype=x.dtype))
