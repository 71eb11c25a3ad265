"""Adam's state as tensors that exist before the first step: create them, list them, load a checkpoint's into them.

`paddle.optimizer.Adam` creates its accumulators (per parameter: `moment1`, `moment2` shaped like it, and
`beta1_pow_acc`, `beta2_pow_acc` [1], the latter two on the host even on a GPU) at its first `step()`; before that,
`set_state_dict` only keeps the arrays it was given until that step copies them in. `materialise` creates the
accumulators at once, exactly as the first step would (same names, values, dtypes and places), so that a checkpoint's
state is copied straight into them (`load`) or received into them from another process in place
(`training/loop.py`: a data-parallel resume), never kept as a second host copy. The multi-tensor update
(`use_multi_tensor`) builds its lists from these same tensors at its first step.

Names: each accumulator is named after its parameter (`<param name>_moment1_0`, ...) only because it is created in
a fresh `unique_name.guard()`, as `ugatit._optimizer_step` steps; a checkpoint's state so restores in any process.

Uses two private members present in Paddle 2.6 and 3.x alike: `Optimizer._create_accumulators(block, params)`, what
the first step calls, and `Optimizer.helper`, the `LayerHelper` the first step sets before it (Paddle 2.6's
accumulators need it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import paddle
from paddle.base.layer_helper import LayerHelper
from paddle.utils import unique_name

from ..formats.checkpoint import CheckpointError

LR_SCHEDULER_KEY = "LR_Scheduler"  # in `Optimizer.state_dict()`: the schedule's state, not an accumulator


def materialise(optimizer: paddle.optimizer.Optimizer, params: Sequence[paddle.Tensor]) -> None:
    """Create `optimizer`'s accumulators for the trainable ones of `params` now (initial values: zero moments,
    beta powers = betas), as its first step would; those that exist already are kept."""
    with unique_name.guard():
        optimizer.helper = LayerHelper(type(optimizer).__name__)  # what the first step sets first
        optimizer._create_accumulators(paddle.static.default_main_program().global_block(),
                                       [p for p in params if not p.stop_gradient])


def accumulators(optimizer: paddle.optimizer.Optimizer) -> dict[str, paddle.Tensor]:
    """`optimizer`'s accumulators by name (the live tensors, sorted by name: the same order in every process)."""
    state = optimizer.state_dict()
    return {name: state[name] for name in sorted(state) if name != LR_SCHEDULER_KEY}


def load(optimizer: paddle.optimizer.Optimizer, params: Sequence[paddle.Tensor], state: Mapping[str, Any],
         path: str = "checkpoint", key: str = "optimizers") -> None:
    """Copy the accumulators of `state` (an `Optimizer.state_dict()` as numpy arrays, from `path` under `key`) into
    `optimizer`'s, materialised first. A state without accumulators (saved before the first step) leaves them at
    their initial values; a partial or misshapen one raises CheckpointError. The schedule is not touched."""
    materialise(optimizer, params)
    names = [name for name in state if name != LR_SCHEDULER_KEY]
    if not names:
        return
    tensors = accumulators(optimizer)
    missing, unknown = sorted(set(tensors) - set(names)), sorted(set(names) - set(tensors))
    if missing or unknown:
        raise CheckpointError(
            f"{path}: the optimiser state under '{key}' does not match this model's parameters "
            f"(missing: {missing[:3]}{'...' if len(missing) > 3 else ''}, "
            f"unexpected: {unknown[:3]}{'...' if len(unknown) > 3 else ''}); was it written with another "
            f"model configuration? Resume with the checkpoint's own config")
    with paddle.no_grad():
        for name, tensor in tensors.items():
            value = np.asarray(state[name])
            if tuple(value.shape) != tuple(tensor.shape):
                raise CheckpointError(f"{path}: '{key}/{name}' has shape {list(value.shape)}, this model's "
                                      f"{list(tensor.shape)}; resume with the checkpoint's own config")
            tensor.set_value(value.astype(_numpy_dtype(tensor), copy=False))


def _numpy_dtype(tensor: paddle.Tensor) -> np.dtype:
    return np.dtype(str(tensor.dtype).replace("paddle.", ""))
