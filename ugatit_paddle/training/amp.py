"""Mixed precision (`train.amp`, GPU only): the autocast region, the loss scaler and the overflow policy.

Under float16 an overflow is part of normal training: unscaling the gradients (`LossScaler`) finds an inf/NaN
gradient, that optimiser step is skipped and the scale halves. A forward overflow makes the loss itself non-finite;
that step is skipped too, and halves the scale as well. The overflow flags stay on the device until the
iteration's one read of the loss terms (`ugatit.py`): the discriminators' step is applied or not on the device
(`conditional_adam.py`), the generators' after the read. Training stops only after `train.amp_max_skipped` steps of
one optimiser in a row were skipped (`OverflowSkips`): then it is diverging, not overflowing.

The initial scale is 2^7 (Paddle's default is 2^15): the generator's CAM term is `cam_weight` (1000) times a
binary cross-entropy averaged over the [N, 2] CAM logits, so its gradient on a logit is
1000 * (sigmoid - target) / (2N), up to 500 / N (about 250 / N at the start, where sigmoid is near 0.5). Scaled
by 2^15 that is 8e6 at the start for N = 1, far beyond float16's 65504: every step from the first would overflow
until the scale has come down (eight skipped steps). 2^7 * 500 = 64000 fits whatever the logits; larger gradients
deeper in the network are the dynamic scale's to handle (it doubles after 1000 taken steps in a row). Not measured
on a GPU. bfloat16 (`train.amp_dtype: bfloat16`; A100 and newer) has float32's exponent range: no loss scaling,
only the overflow policy.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import paddle

from ..config import AMP_DTYPES  # noqa: F401  (re-exported: the dtypes `autocast` takes)
from .losses import NonFiniteLossError

INIT_LOSS_SCALE = 2.0**7
GROWTH_INTERVAL = 1000  # taken steps in a row after which the loss scale doubles (Paddle's default)


class AmpOverflowError(NonFiniteLossError):
    """Too many optimiser steps in a row overflowed under mixed precision."""


def autocast(dtype: str) -> contextlib.AbstractContextManager:
    """`paddle.amp.auto_cast` (O1: convolutions and matrix products in `dtype`)."""
    return paddle.amp.auto_cast(level="O1", dtype=dtype)


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


class LossScaler:
    """Dynamic loss scaling for float16: the loss is multiplied by the scale before backward and the gradients divided
    by it after (`unscale`, which also says on the device whether one is inf/NaN); after the host has read that flag,
    `update` halves the scale for a skipped step and doubles it after `growth_interval` taken steps in a row (the
    policy of `paddle.amp.GradScaler`'s defaults). The scale, a power of two, is kept on the host (`value`) with a
    copy on the device, so that nothing here reads the device (GradScaler's update reads its scale to print it, and
    in Paddle 3.3 with numpy 2 fails doing so)."""

    def __init__(self, init: float | None = None, growth_interval: int = GROWTH_INTERVAL) -> None:
        self.value = INIT_LOSS_SCALE if init is None else init
        self.growth_interval = growth_interval
        self.taken_in_a_row = 0
        self._on_device: paddle.Tensor | None = None  # `value` as a tensor, made anew when it changes

    def scale(self, loss: paddle.Tensor) -> paddle.Tensor:
        """`loss` times the scale, in float32."""
        if self._on_device is None:
            self._on_device = paddle.full([], self.value, "float32")
        return loss.astype("float32") * self._on_device

    def unscale(self, params: Sequence[paddle.Tensor]) -> paddle.Tensor:
        """Divide the gradients of `params` by the scale, in place (exact: a power of two); returns whether one of
        them holds an inf/NaN (bool [], on the device, not read here)."""
        finite = []
        with paddle.no_grad():
            for p in params:
                if p.grad is not None:
                    p.grad.scale_(1.0 / self.value)
                    finite.append(paddle.isfinite(p.grad).all())
        return paddle.logical_not(paddle.stack(finite).all()) if finite else paddle.full([], False, "bool")

    def update(self, skipped: bool) -> None:
        """After the host has decided the step: halve the scale if it was `skipped` (an overflowed gradient or a
        non-finite loss), double it after `growth_interval` taken steps in a row."""
        before = self.value
        if skipped:
            self.value, self.taken_in_a_row = self.value / 2, 0
        else:
            self.taken_in_a_row += 1
            if self.taken_in_a_row == self.growth_interval:
                self.value, self.taken_in_a_row = self.value * 2, 0
        if self.value != before:
            self._on_device = None

    def state_dict(self) -> dict[str, float | int]:
        return {"scale": self.value, "taken_in_a_row": self.taken_in_a_row}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """A state of `state_dict`, or of `paddle.amp.GradScaler.state_dict` (checkpoints before this class)."""
        self.value = float(np.asarray(state["scale"]).reshape(-1)[0])
        self.taken_in_a_row = int(state.get("taken_in_a_row", state.get("incr_count", 0)))
        self._on_device = None


class AmpStep:
    """One optimiser's mixed-precision bookkeeping, in the order of an iteration that reads the device once:
    `backward` through the loss scale (float16), `unscale` (the overflow flag stays on the device), then, after the
    read, `step_taken` (records a skip in the shared `skips` under `name` and adapts the scale); the caller steps."""

    def __init__(self, name: str, dtype: str, skips: OverflowSkips) -> None:
        self.name, self.skips = name, skips
        self.scaler = LossScaler() if dtype == "float16" else None  # bfloat16: float32's range, no scaling

    def backward(self, loss: paddle.Tensor) -> None:
        (loss if self.scaler is None else self.scaler.scale(loss)).backward()

    def unscale(self, params: Sequence[paddle.Tensor]) -> paddle.Tensor | None:
        """The gradients of `params` unscaled; whether one of them overflowed (bool [], on the device), or None
        without a scale (bfloat16)."""
        return None if self.scaler is None else self.scaler.unscale(params)

    def step_taken(self, loss_finite: bool, grads_overflowed: bool, iteration: int,
                   detail: Callable[[], str]) -> bool:
        """Whether this optimiser's step at `iteration` (1-based) goes ahead: its loss is finite (`detail()` names
        the bad terms if not) and no gradient overflowed. A skipped step is recorded and halves the scale. Raises
        AmpOverflowError after a run of skipped steps."""
        taken = loss_finite and not grads_overflowed
        if self.scaler is not None:
            self.scaler.update(skipped=not taken)
        self.skips.record(self.name, not taken, iteration,
                          "" if taken else detail() if not loss_finite else "gradient overflow")
        return taken

    def state_dict(self) -> dict:
        return self.scaler.state_dict() if self.scaler is not None else {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if self.scaler is not None and state:
            self.scaler.load_state_dict(state)
