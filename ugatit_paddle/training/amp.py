"""Mixed precision (`train.amp`, GPU only): the autocast region, the loss scaler and the overflow policy.

Under float16 an overflow is part of normal training: the `paddle.amp.GradScaler` finds an inf/NaN gradient,
skips that optimiser step and halves its scale (every 2nd such step, Paddle's default). A forward overflow makes
the loss itself non-finite; that step is skipped too (after its backward: see `ugatit._check_finite`). Training
stops only after `train.amp_max_skipped` steps of one optimiser in a row were skipped (`OverflowSkips`): then
it is diverging, not overflowing.

The initial scale is 2^7 (Paddle's default is 2^15): the generator's CAM term is `cam_weight` (1000) times a
binary cross-entropy averaged over the [N, 2] CAM logits, so its gradient on a logit is
1000 * (sigmoid - target) / (2N), up to 500 / N (about 250 / N at the start, where sigmoid is near 0.5). Scaled
by 2^15 that is 8e6 at the start for N = 1, far beyond float16's 65504: every step from the first would overflow
until the scaler has come down (it halves every 2nd overflow). 2^7 * 500 = 64000 fits whatever the logits;
larger gradients deeper in the network are the dynamic scaler's to handle (it grows by 2 after 1000 clean
steps). Not measured on a GPU. bfloat16 (`train.amp_dtype: bfloat16`; A100 and
newer) has float32's exponent range: no loss scaling, only the overflow policy.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import paddle
from paddle.utils import unique_name

from ..config import AMP_DTYPES  # noqa: F401  (re-exported: the dtypes `autocast` takes)
from .losses import NonFiniteLossError

INIT_LOSS_SCALE = 2.0**7


class AmpOverflowError(NonFiniteLossError):
    """Too many optimiser steps in a row overflowed under mixed precision."""


def autocast(dtype: str) -> contextlib.AbstractContextManager:
    """`paddle.amp.auto_cast` (O1: convolutions and matrix products in `dtype`)."""
    return paddle.amp.auto_cast(level="O1", dtype=dtype)


def scaler_found_inf(scaler: paddle.amp.GradScaler) -> bool:
    """Whether the last `scaler.step` skipped its step (an inf/NaN gradient). Paddle keeps it in a private
    attribute (spelled `_cache_founf_inf` up to 2.6); it already read it from the device to decide."""
    value = getattr(scaler, "_cache_found_inf", getattr(scaler, "_cache_founf_inf", None))
    return bool(value) if value is not None else False


class OverflowSkips:
    """Counts, per optimiser, the skipped (overflowed) steps in a row; `record` raises AmpOverflowError once
    `limit` are reached. `total` counts all skipped steps of the run (for the log)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_a_row: dict[str, int] = {}
        self.total = 0

    def record(self, name: str, skipped: bool, iteration: int, detail: str = "") -> None:
        """Note whether optimiser `name`'s step at `iteration` (1-based) was skipped."""
        if not skipped:
            self.in_a_row[name] = 0
            return
        self.total += 1
        self.in_a_row[name] = self.in_a_row.get(name, 0) + 1
        if self.in_a_row[name] >= self.limit:
            raise AmpOverflowError(
                f"mixed precision: {self.limit} {name} steps in a row overflowed (up to iteration {iteration}"
                f"{'; ' + detail if detail else ''}); training stopped, the last checkpoint on disk is the last good "
                f"state (try train.amp_dtype=bfloat16 on a card that has it, train.amp=false, or a lower train.lr)")


class AmpStep:
    """One optimiser's mixed-precision update: backward through the loss scaler (float16) and the step that
    the scaler may skip, counted by the shared `skips` under `name`."""

    def __init__(self, name: str, dtype: str, skips: OverflowSkips) -> None:
        self.name, self.skips = name, skips
        self.scaler = paddle.amp.GradScaler(init_loss_scaling=INIT_LOSS_SCALE) if dtype == "float16" else None

    def loss_is_finite(self, finite: bool, iteration: int, detail: Callable[[], str]) -> bool:
        """Record a forward overflow (a non-finite loss: the step is skipped); returns `finite`."""
        if not finite:
            self.skips.record(self.name, True, iteration, detail())
        return finite

    def backward(self, loss: paddle.Tensor) -> None:
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def step(self, optimizer: paddle.optimizer.Optimizer, iteration: int,
             before_step: Callable[[], None] = lambda: None) -> None:
        """Unscale, `before_step()` on the true gradients (the weight decay), step unless a gradient overflowed,
        adapt the scale; record whether it was skipped."""
        with unique_name.guard():  # optimiser state names independent of process history (see ugatit.py)
            if self.scaler is None:
                before_step()
                optimizer.step()
                skipped = False
            else:
                self.scaler.unscale_(optimizer)
                before_step()
                self.scaler.step(optimizer)
                self.scaler.update()
                skipped = scaler_found_inf(self.scaler)
        self.skips.record(self.name, skipped, iteration, "gradient overflow")

    def state_dict(self) -> dict:
        return self.scaler.state_dict() if self.scaler is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)
