"""An Adam step that takes effect only if a flag on the device says so, decided without the host reading it.

`paddle.optimizer.Adam` can skip a step only after reading a flag on the host (`if found_inf:` in `Optimizer.step`
of Paddle 2.6 and 3.x; the single-tensor kernel's skip input, passed in static graphs only, is copied to the host on
GPUs, and the multi-tensor kernel has none). The U-GAT-IT iteration needs the discriminators' update skipped when
their loss is not finite, and the generators' loss depends on that update: with Paddle's step, the host would wait
for the device between the two. `ConditionalAdam.step_if(apply)` is the same update, as device operations on the
optimiser's own accumulators (so checkpoints and resumes are unchanged), each parameter's gradient replaced by
zero and the step's coefficients by those of an identity when `apply` is false:

    m <- b1 * m + (1 - b1) * g                          b1 -> 1, g -> 0: m unchanged
    v <- b2 * v + (1 - b2) * g * g                      b2 -> 1, g -> 0: v unchanged
    p <- p - lr_t * (m / (sqrt(v) + eps_t))             lr_t -> 0:       p unchanged (m, v finite)

with lr_t = lr * sqrt(1 - b2^t) / (1 - b1^t) and eps_t = eps * sqrt(1 - b2^t), in the order of operations of
Paddle's Adam kernel: in float64 the values are Paddle's (the weights to the last bit); in float32 the coefficients
are rounded from their double values (1 - b2 = 0.001, as in torch.optim.Adam, where Paddle's kernel computes
0.00099998713 from b2 in float32), which moves a step by about 6e-6 of itself. The beta powers b1^t, b2^t (host
tensors) advance only when the caller, which reads `apply` later with everything else, says the step took effect
(`advance`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import paddle

from . import optimizer_state


class ConditionalAdam:
    """Adam steps of `optimizer` (a `paddle.optimizer.Adam`, its accumulators and schedule) over `params`, each
    applied or not according to a boolean tensor on the device."""

    def __init__(self, optimizer: paddle.optimizer.Adam, params: Sequence[paddle.Tensor]) -> None:
        self.optimizer = optimizer
        self.params = [p for p in params if not p.stop_gradient]
        self._beta_powers: tuple[float, float] | None = None  # b1^t, b2^t of the next step, on the host

    def forget_beta_powers(self) -> None:
        """The accumulators were replaced (a resume): read the beta powers from them again at the next step."""
        self._beta_powers = None

    def step_if(self, apply: paddle.Tensor) -> None:
        """One Adam step over the parameters that have a gradient, taking effect only where `apply` (bool, one
        element, on the device) is true; otherwise no parameter or moment changes, whatever the gradients hold
        (NaN included). The beta powers do not advance here: see `advance`."""
        opt = self.optimizer
        b1, b2, eps = float(opt._beta1), float(opt._beta2), float(opt._epsilon)
        b1_t, b2_t = self._powers()
        lr_t = opt.get_lr() * math.sqrt(1 - b2_t) / (1 - b1_t)
        eps_t = eps * math.sqrt(1 - b2_t)
        apply = apply.reshape([])
        with paddle.no_grad():
            coefficients: dict[paddle.dtype, list[paddle.Tensor]] = {}
            for p in self.params:
                if p.grad is None:
                    continue
                if p.dtype not in coefficients:  # [b1, 1 - b1, b2, 1 - b2, lr_t, eps_t] or an identity step's
                    pairs = ((b1, 1.0), (1 - b1, 0.0), (b2, 1.0), (1 - b2, 0.0), (lr_t, 0.0), (eps_t, eps_t))
                    coefficients[p.dtype] = [
                        paddle.where(apply, paddle.full([], on, p.dtype), paddle.full([], off, p.dtype))
                        for on, off in pairs]
                beta1, one_minus_beta1, beta2, one_minus_beta2, lr, epsilon = coefficients[p.dtype]
                g = paddle.where(apply, p.grad, paddle.zeros([], p.dtype))
                m = opt._get_accumulator_master(opt._moment1_acc_str, p)
                v = opt._get_accumulator_master(opt._moment2_acc_str, p)
                m.multiply_(beta1).add_(one_minus_beta1 * g)
                v.multiply_(beta2).add_(one_minus_beta2 * g * g)
                p.subtract_(lr * (m / (v.sqrt() + epsilon)))

    def advance(self) -> None:
        """The last `step_if` took effect: b1^t, b2^t advance (on the host, in every parameter's accumulators)."""
        b1_t, b2_t = self._powers()
        self._beta_powers = (b1_t * float(self.optimizer._beta1), b2_t * float(self.optimizer._beta2))
        opt = self.optimizer
        with paddle.no_grad():
            for p in self.params:
                opt._get_accumulator_master(opt._beta1_pow_acc_str, p).fill_(self._beta_powers[0])
                opt._get_accumulator_master(opt._beta2_pow_acc_str, p).fill_(self._beta_powers[1])

    def _powers(self) -> tuple[float, float]:
        """b1^t, b2^t of the next step; at the first step and after a resume, read from the accumulators (created first
        if need be; host tensors even on a GPU, so reading them waits for nothing)."""
        if self._beta_powers is None:
            optimizer_state.materialise(self.optimizer, self.params)
            opt = self.optimizer
            first = self.params[0]
            self._beta_powers = (opt._get_accumulator_master(opt._beta1_pow_acc_str, first).item(),
                                 opt._get_accumulator_master(opt._beta2_pow_acc_str, first).item())
        return self._beta_powers
