"""CPU speed kernels behind the plain layers of `layers.py`: the same functions, spelt the way Paddle's CPU
kernels run fastest. The layers call them only for tensors on a CPU place in dynamic mode (`applies`); on
GPUs the layers run the plain Paddle ops, in static (exported) graphs the forms of `static_forms.py`.

- Convolutions (`conv2d`): float32 ones by oneDNN (`onednn.py`); a large weight at few output pixels as one
  matrix product on unfolded patches; a stride-1 convolution with fewer output than input channels as the
  equivalent transposed convolution.
- Reflection padding and nearest 2x up-sampling (`reflection_pad`, `upsample_nearest2x`): one `gather`
  over flattened planes (`gather_planes`); float32 padding of large tensors by oneDNN copies.
- The decoder's up-sampling step, 3x3 convolution of the reflect-padded 2x up-sampled input
  (`upsample_conv3x3`): one stride-2 transposed convolution of the input (the form of
  `static_forms.upsample_conv3x3`), by oneDNN in float32, by Paddle on large planes; else one gather (up-sampling
  and padding together) and `conv2d`.
"""

from __future__ import annotations

import functools

import numpy as np
import paddle
import paddle.nn.functional as F

from . import onednn, static_forms

# A large weight applied at few output pixels (the global discriminators' deepest layers below 256 px): one
# [N*L, C_in*k*k] x [C_in*k*k, C_out] product on unfolded patches beats Paddle's CPU convolution 1.4-2.2x
# forward and backward, whose input gradient multiplies by the transposed weight (a slow MKL path for this
# shape). Measured at L = 4..225 output pixels: faster up to 16, slower from 49 on and for small weights.
MATMUL_MAX_PIXELS = 16
MATMUL_MIN_WEIGHT = 2**20
# `upsample_conv3x3` as a transposed convolution from this many input pixels on (4 instead of 9 multiply-adds per
# output pixel): forward and backward 1.3-1.6x faster than gather + `conv2d` at 64x64 inputs (C 32..256), 1.1-1.4x
# slower at 32x32 (C 64..256), measured with batch 1 on a 2-core AMD EPYC (Paddle 3.3).
UPSAMPLE_TRANSPOSED_MIN_PIXELS = 64 * 64
# oneDNN (`onednn.py`) computes a float32 convolution 1.3-2x faster than Paddle (forward and backward, 2 threads),
# except 1x1 ones (a matrix product, which Paddle's MKL runs as fast without the layout reorders), the large weights
# at few output pixels above and convolutions with fewer output channels than this. Those with fewer (the 7x7 output
# layer) run in the transposed form, by oneDNN 1.4-2.2x faster than by Paddle, except with a single output channel
# (the discriminators' last layer: Paddle 2.4x faster). The up-sampling step's transposed convolution by oneDNN is
# 1.7-3.9x faster than by Paddle and than gather + convolution at every size. Measured on a 2-core Intel Xeon.
ONEDNN_MIN_OUT_CHANNELS = 16
ONEDNN_MIN_TRANSPOSED_OUT_CHANNELS = 2
# Weights larger than this (elements; the global discriminator's deepest layers at 256 px, 1024x512x4x4 and
# 2048x1024x4x4) stay with Paddle: oneDNN is about as fast there (forward and backward 69 against 80 ms and 155
# against 167 ms, a few calls per iteration) but holds a reordered copy of the weight and per-thread weight-gradient
# buffers (2048x1024x4x4 alone: +376 MiB at the light model's 256 px peak).
ONEDNN_MAX_WEIGHT = 2**21
# Reflection and edge padding by oneDNN's multi-threaded copies (`onednn.pad`) from this many input elements on:
# forward and backward 2x faster than `gather` at [2, 128, 32, 32]; below it the fixed cost of 4p + 1 calls dominates.
ONEDNN_PAD_MIN_ELEMENTS = 2**15


def applies(x: paddle.Tensor) -> bool:
    """Whether the CPU kernels should compute on `x`: dynamic mode and a CPU place."""
    return paddle.in_dynamic_mode() and x.place.is_cpu_place()


def conv2d(x: paddle.Tensor, weight: paddle.Tensor, bias: paddle.Tensor | None, stride: int) -> paddle.Tensor:
    """conv2d(x [N, C_in, H, W], weight [C_out, C_in, k, k], stride, no padding) by the fastest of four
    equivalent CPU computations.

    Paddle's CPU convolution gathers the input into a [C_in * k * k, H * W] column matrix (im2col) and
    multiplies. A stride-1 convolution is also a transposed convolution of the same input with the kernel
    flipped and its channel axes swapped, cropped by k - 1 on each side; Paddle computes that one by a
    multiplication into [C_out * k * k, H * W] columns that it scatters back (col2im). When C_out < C_in
    (the decoder's up-sampling convolutions, the 7x7 output convolution, the discriminators' last layer)
    the second matrix is smaller: 1.6x to 8x faster forward and backward on CPU, same values to
    float32 rounding (about 1e-6 relative). A large weight at few output pixels runs as one matrix product
    (`conv_as_matmul`, see `MATMUL_MAX_PIXELS`); most float32 convolutions by oneDNN (`ONEDNN_MIN_OUT_CHANNELS`).
    """
    c_out, c_in, k, _ = weight.shape
    h, w = x.shape[2:]
    out_h, out_w = (h - k) // stride + 1, (w - k) // stride + 1
    if out_h * out_w <= MATMUL_MAX_PIXELS and weight.size >= MATMUL_MIN_WEIGHT:
        return conv_as_matmul(x, weight, bias, stride, out_h, out_w)
    fast = uses_onednn(x)
    if k > 1 and c_out >= ONEDNN_MIN_OUT_CHANNELS and weight.size <= ONEDNN_MAX_WEIGHT and fast:
        return onednn.conv2d(x, weight, bias, stride)
    if c_out < c_in and k > 1 and stride == 1:
        kernel = weight.flip([2, 3]).transpose([1, 0, 2, 3])
        if fast and c_out >= ONEDNN_MIN_TRANSPOSED_OUT_CHANNELS:
            return onednn.conv2d_transpose(x, kernel, bias, 1, k - 1)
        return F.conv2d_transpose(x, kernel, bias, padding=k - 1)
    return F.conv2d(x, weight, bias, stride=stride)


def uses_onednn(x: paddle.Tensor) -> bool:
    """Whether convolutions of `x` run through oneDNN: float32 and `onednn.available()`."""
    return x.dtype == paddle.float32 and onednn.available()


def pads_by_onednn(x: paddle.Tensor) -> bool:
    """Whether padding `x` runs through oneDNN (`ONEDNN_PAD_MIN_ELEMENTS`)."""
    return x.size >= ONEDNN_PAD_MIN_ELEMENTS and uses_onednn(x)


def conv_as_matmul(x: paddle.Tensor, weight: paddle.Tensor, bias: paddle.Tensor | None, stride: int,
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


def reflection_pad(x: paddle.Tensor, p: int) -> paddle.Tensor:
    """Reflect-pad x [N, C, H, W] by `p` on all four sides -> [N, C, H + 2p, W + 2p]: by oneDNN copies for float32
    tensors from `ONEDNN_PAD_MIN_ELEMENTS` on, else by one gather (about 1.2-3x faster on CPU than `pad3d`)."""
    h, w = x.shape[2:]
    if pads_by_onednn(x):
        return onednn.pad(x, p, "reflect")
    return gather_planes(x, reflection_index(h, w, p), h + 2 * p, w + 2 * p)


@functools.lru_cache(maxsize=64)
def upsample_reflection_index(h: int, w: int, p: int) -> np.ndarray:
    """`gather_planes` indices that up-sample an [H, W] plane 2x (nearest) and reflect-pad the result by `p`."""
    return upsample_index(h, w)[reflection_index(2 * h, 2 * w, p)]


@functools.lru_cache(maxsize=64)
def edge_index(h: int, w: int) -> np.ndarray:
    """`gather_planes` indices that repeat the border pixels of an [H, W] plane once on each side."""
    rows, cols = np.clip(np.arange(-1, h + 1), 0, h - 1), np.clip(np.arange(-1, w + 1), 0, w - 1)
    return (rows[:, None] * w + cols[None, :]).reshape(-1)


def edge_pad(x: paddle.Tensor) -> paddle.Tensor:
    """Repeat the border pixels of x [N, C, H, W] once on each side -> [N, C, H + 2, W + 2], by one gather."""
    h, w = x.shape[2:]
    return gather_planes(x, edge_index(h, w), h + 2, w + 2)


def upsample_conv3x3(x: paddle.Tensor, weight: paddle.Tensor, bias: paddle.Tensor | None) -> paddle.Tensor:
    """conv3x3(reflection_pad(upsample_nearest2x(x), 1), weight) + bias: x [N, C, H, W], weight [O, C, 3, 3],
    bias [O] or None -> [N, O, 2H, 2W]. As a transposed convolution of the edge-padded input (same values to float32
    rounding, about 5e-7 relative) by oneDNN, or by Paddle from `UPSAMPLE_TRANSPOSED_MIN_PIXELS` input pixels on;
    below that by one gather and `conv2d` (the same values as the three steps)."""
    h, w = x.shape[2:]
    if uses_onednn(x):
        padded = onednn.pad(x, 1, "edge") if pads_by_onednn(x) else edge_pad(x)
        return onednn.conv2d_transpose(padded, static_forms.upsample_conv3x3_kernel(weight), bias, 2, 3)
    if h * w >= UPSAMPLE_TRANSPOSED_MIN_PIXELS:
        kernel = static_forms.upsample_conv3x3_kernel(weight)
        return F.conv2d_transpose(edge_pad(x), kernel, bias, stride=2, padding=3)
    padded = gather_planes(x, upsample_reflection_index(h, w, 1), 2 * h + 2, 2 * w + 2)
    return conv2d(padded, weight, bias, 1)


def upsample_nearest2x(x: paddle.Tensor) -> paddle.Tensor:
    """Repeat each pixel of x [N, C, H, W] 2x2 -> [N, C, 2H, 2W] (about 2-4x faster on CPU than `nearest_interp`,
    forward and backward)."""
    h, w = x.shape[2:]
    return gather_planes(x, upsample_index(h, w), 2 * h, 2 * w)
