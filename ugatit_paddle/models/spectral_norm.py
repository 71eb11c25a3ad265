"""Spectral normalisation as a forward pre-hook, step for step like `torch.nn.utils.spectral_norm`.

`weight = weight_orig / sigma` with `sigma = u . (W v)`; in train mode each forward first runs one power
iteration (`v = normalize(W^T u)`, `u = normalize(W v)`) and stores the new `weight_u`/`weight_v`
buffers; in eval mode the stored vectors are used as they are. Gradients flow through `weight_orig` only.
Where a convolution's output is smaller than its weight, the hook hands the layer `(weight_orig, 1 / sigma)`
instead (`UnpaddedConv2D.scaled_weight`), which computes `conv(x, weight_orig) / sigma + bias`: the same
function, with the division done on the smaller tensor. Not under `paddle.amp.auto_cast`: there the
convolution runs in float16, where the un-normalised product can overflow, so the weight is divided first.

Paddle ships an equivalent hook; this one additionally works under `paddle.LazyGuard` (shapes known
before any weight is allocated), which lets the converter check a checkpoint's shapes for free.
"""

from __future__ import annotations

import math
from typing import Any

import paddle
import paddle.nn as nn
import paddle.nn.functional as F
from paddle.autograd import PyLayer
from paddle.base import core, framework

from .layers import UnpaddedConv2D

EPS = 1e-12


class _Sigma(PyLayer):
    """sigma = u . `mat_v` where `mat_v` = W v was computed without autograd; d sigma / dW = outer(u, v).

    Autograd through `dot(u, mv(W, v))` would compute W v once more and, backward, an outer product, then a
    copy to undo the reshape: three passes over a weight of up to 8.4M values (the global discriminators'
    deepest layer at ch 32) where this makes one. Same values, bit for bit.
    """

    @staticmethod
    def forward(ctx: Any, weight: paddle.Tensor, u: paddle.Tensor, v: paddle.Tensor, mat_v: paddle.Tensor,
                dim: int) -> paddle.Tensor:
        ctx.save_for_backward(u, v)
        ctx.shape, ctx.dim = weight.shape, dim
        return paddle.dot(u, mat_v)

    @staticmethod
    def backward(ctx: Any, grad: paddle.Tensor) -> paddle.Tensor:
        u, v = ctx.saved_tensor()
        if ctx.dim == 0:  # weight [out, ...]: the [out, rest] outer product is already in its memory order
            return paddle.matmul((u * grad).unsqueeze(1), v.unsqueeze(0)).reshape(ctx.shape)
        return paddle.matmul(v.unsqueeze(1), (u * grad).unsqueeze(0))  # Linear weight [in, out]: outer(u, v)^T


def autocast_active() -> bool:
    """True inside a `paddle.amp.auto_cast` that takes effect (on a CPU it is a no-op and this is False)."""
    tracer = framework._dygraph_tracer()
    return tracer is not None and tracer._amp_level != core.AmpLevel.O0


class SpectralNorm:
    """The pre-hook; `dim` is the axis of the weight that indexes output features (0 for Conv2D, 1 for Linear)."""

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def matrix(self, weight: paddle.Tensor) -> paddle.Tensor:
        """The weight as a [out_features, rest] matrix."""
        if self.dim != 0:
            weight = weight.transpose([self.dim] + [d for d in range(weight.ndim) if d != self.dim])
        return weight.reshape([weight.shape[0], -1])

    def __call__(self, layer: nn.Layer, inputs: tuple[paddle.Tensor, ...]) -> None:
        self.normalise(layer, inputs[0].shape)

    def normalise(self, layer: nn.Layer, input_shape: list[int]) -> None:
        """Set the layer's normalised `weight` (or `scaled_weight`) for an input of shape `input_shape`; in train
        mode after one power iteration."""
        # In float32 also under `train.amp`: auto_cast would run the power iteration's products in float16 (8.4M
        # weights cast at every forward) and hand the float32 buffers float16 values.
        scale_output = not autocast_active()  # asked before the region below turns it off
        with paddle.amp.auto_cast(enable=False):
            self._normalise(layer, input_shape, scale_output)

    def _normalise(self, layer: nn.Layer, input_shape: list[int], scale_output: bool) -> None:
        weight = layer.weight_orig
        u, v = layer.weight_u, layer.weight_v
        with paddle.no_grad():
            mat = self.matrix(weight)
            if layer.training:
                # `assign(..., output=)` writes the buffer on its device; Paddle 2.6's `set_value` goes through
                # numpy (a blocking download and upload per call, ~200 per iteration on a GPU)
                paddle.assign(F.normalize(paddle.matmul(mat, u, transpose_x=True), axis=0, epsilon=EPS), output=v)
                mat_v = paddle.matmul(mat, v)
                paddle.assign(F.normalize(mat_v, axis=0, epsilon=EPS), output=u)
                u, v = u.clone(), v.clone()
            else:
                mat_v = paddle.matmul(mat, v)
        sigma = _Sigma.apply(weight, u, v, mat_v, self.dim)
        # times the reciprocal rather than a division: equal to rounding, and on CPU Paddle's gradient of a
        # tensor-by-scalar product is cheaper than that of the quotient (and closer to float64)
        inv_sigma = 1.0 / sigma
        if scale_output and isinstance(layer, UnpaddedConv2D) and weight.size > layer.output_numel(input_shape):
            layer.scaled_weight = (weight, inv_sigma)  # conv(x, W) / sigma: the smaller tensor scaled
        else:
            layer.weight = weight * inv_sigma
            if isinstance(layer, UnpaddedConv2D):
                layer.scaled_weight = None


def spectral_norm(layer: nn.Conv2D | nn.Linear) -> nn.Layer:
    """Re-parametrise `layer.weight` as `weight_orig` / sigma; adds buffers `weight_u` [out], `weight_v` [rest]."""
    dim = 1 if isinstance(layer, nn.Linear) else 0
    weight = layer._parameters.pop("weight")
    shape = list(weight.shape)
    out = shape[dim]
    rest = math.prod(shape) // out
    layer.add_parameter("weight_orig", weight)
    layer.register_buffer("weight_u", F.normalize(paddle.normal(shape=[out]), axis=0, epsilon=EPS))
    layer.register_buffer("weight_v", F.normalize(paddle.normal(shape=[rest]), axis=0, epsilon=EPS))
    layer.spectral_norm = SpectralNorm(dim)  # for `normalise_before`
    layer.register_forward_pre_hook(layer.spectral_norm)
    return layer


def normalise_before(layer: nn.Layer, input_shape: list[int]) -> None:
    """Run what the spectral-norm pre-hook of `layer` (if it has one) does at a call with an input of shape
    `input_shape`, ahead of a call of `layer.forward` that bypasses the hook (recomputation, `discriminator.py`)."""
    hook = getattr(layer, "spectral_norm", None)
    if isinstance(hook, SpectralNorm):
        hook.normalise(layer, input_shape)
