"""Activation recomputation (`train.recompute`): a block keeps only its inputs for backward and runs its forward
again there, trading compute for the memory of its intermediate activations.

Paddle's own mechanism (`paddle.distributed.fleet.utils.recompute`, in Paddle 2.6 and 3.x), in its
saved-tensor-hook form (`use_reentrant=False`): it gives parameters their gradients also where the block's
inputs need none (a generator's first block on real images), which the PyLayer form does not. The blocks
recomputed are pure functions of their inputs and weights (no random numbers, no buffers updated), so the
second forward computes the same values and the gradients are those of the plain forward. (The discriminators'
conv stacks qualify because spectral norm, which advances its u/v buffers, runs before the recomputed part and
hands it the normalised weights: `Discriminator.features`.) A block may be a layer or any function of tensors.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
from collections.abc import Callable, Iterator
from typing import Any

import paddle
import paddle.nn as nn
from paddle.distributed.fleet.utils import recompute as _paddle_recompute

from . import cpu_kernels


def recomputed(layer: nn.Layer | Callable[..., Any], *inputs: paddle.Tensor) -> Any:
    """`layer(*inputs)`, its intermediate activations recomputed in backward instead of kept (plain call
    where no gradient is recorded)."""
    if not paddle.is_grad_enabled():
        return layer(*inputs)
    # Paddle allows one pair of saved-tensor hooks at a time: the CPU kernels' one-off autograd probe must not
    # run first inside the recomputed forward (it is cached after its first call).
    cpu_kernels.gather_gradient_is_correct()
    with _quiet_recompute_notice():
        return _paddle_recompute(layer, *inputs, preserve_rng_state=False, use_reentrant=False)


def run_block(layer: nn.Layer | Callable[..., Any], *inputs: paddle.Tensor, recompute: bool) -> Any:
    """`layer(*inputs)`, recomputed in backward (`recomputed`) if `recompute`."""
    return recomputed(layer, *inputs) if recompute else layer(*inputs)


@contextlib.contextmanager
def _quiet_recompute_notice() -> Iterator[None]:
    """Silence Paddle's warning that no input of the block needs a gradient (it concerns the PyLayer form; here the
    block's parameters do, e.g. an encoder on real images), which it would print at every iteration."""
    module = importlib.import_module("paddle.distributed.fleet.recompute.recompute")
    logger = getattr(module, "logger", None)
    if not isinstance(logger, logging.Logger):
        yield
        return
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)
