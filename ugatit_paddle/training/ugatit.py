"""One U-GAT-IT optimisation step: the six networks, the two Adam optimisers, the schedule and the D and G updates.

`UGATIT(cfg).step(real_A, real_B)` is one iteration of the official code (`UGATIT.train`), without its
wasted work:

1. translate: `fake_A2B = genA2B(real_A)`, `fake_B2A = genB2A(real_B)` (once; the official code runs the
   generators again for the G step, which gives identical fakes because G has not changed in between);
2. D step: each of the four discriminators sees its real batch and the detached fake; LSGAN losses on
   patch and CAM logits (`losses.discriminator_loss`); one Adam step over all discriminator parameters;
3. G step: cycle (`A -> B -> A`), identity (`A -> A` through genB2A) and adversarial terms plus the CAM
   classification term (`losses.generator_loss`), each generator's cycle and identity passes run as one batch
   (`_cycle_and_identity`: same values); one Adam step over both generators' parameters (the
   discriminators enter this step as constants: the official code computes their weight gradients here
   only to clear them);
4. clamp `rho` of every AdaILN/ILN to [0, 1]; advance the learning-rate schedule.

Everything around the step (data, resume, logging, samples, checkpoints, signals, starting data parallel)
is the loop's (`loop.py`). In a data-parallel job (`world_size` > 1) the step averages the gradients over
the processes before each optimiser step, so N processes with batch B train exactly like one with batch N*B.

Recomputation (`train.recompute`): the generators' encoder, AdaILN blocks and decoder and the discriminators' conv
stacks keep only their inputs for backward and run their forward again there (`models/recompute.py`): less
memory, same values, more time. Each optimiser's gradients are freed right after its step, so that one step's
gradients are not held through the other's backward (the iteration's peak is the G step's backward).

Waiting for the device: the host needs every step's loss summed over the processes before that step's update
(a non-finite one stops training, or under AMP skips the step). The values returned are copies of the loss
terms made for it, all at once (`_read_terms`); nothing else in the iteration reads the device.
- `one_read` (the default on a GPU): one read per iteration, after the G step's backward. The D step's update
  cannot wait for it, since the G loss depends on it: it is applied or not on the device, by the finiteness of the D
  loss (`conditional_adam.ConditionalAdam`, Paddle's Adam update as device operations; Paddle's own Adam can skip
  only after reading a flag on the host). The G step's update follows the read.
- otherwise (the default on a CPU, where reading costs a copy and no wait: the device is the host): one read per
  optimiser step, after its backward and before its update, and Paddle's fused multi-tensor Adam for both (the
  device-side update is a dozen passes over the weights instead of one fused kernel: slower on a CPU).
Both train alike: losses, weights and Adam state after 3 float64 iterations are equal (test_ugatit).

Collectives in a data-parallel iteration (besides the gradients' all-reduce): one all-reduce of the D loss and one
of the G loss (the finiteness checks see the sum over the processes, so that all stop or skip together). The
training loop's stop vote (`step(..., stop_vote=...)`) travels with the G loss in the same all-reduce:
`stop_agreed` then says whether any process voted to stop.

Mixed precision (`train.amp`, GPU only): the forwards run under `paddle.amp.auto_cast` (O1: convolutions
and matrix products in `train.amp_dtype`), each optimiser step goes through its own `amp.AmpStep` (with a loss
scale for float16); overflowing steps are skipped and counted, not fatal (`amp.py`).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import paddle
from paddle.distributed.fleet.utils.hybrid_parallel_util import fused_allreduce_gradients
from paddle.utils import unique_name

from ..config import Config, ConfigError
from ..formats import checkpoint
from ..models import DISCRIMINATORS, GENERATORS, build_networks, clip_rho
from . import losses, optimizer_state
from .losses import NonFiniteLossError
from .amp import AmpStep, OverflowSkips, autocast
from .conditional_adam import ConditionalAdam
from .determinism import configure_gpu_kernels


class AmpUnavailableError(ConfigError):
    """`train.amp` is on but there is no GPU: refusing instead of silently training in float32."""


class HalfLinearDecay(paddle.optimizer.lr.LRScheduler):
    """Constant learning rate for the first half of `iterations`, then linear decay to 0 (per iteration).

    `last_epoch` counts completed iterations, so iteration t (0-based) runs at
    `base_lr * (1 - max(0, t + 1 - half) / half)`, the official schedule.
    """

    def __init__(self, learning_rate: float, iterations: int, decay: bool = True) -> None:
        self.half = iterations // 2
        self.decay = decay
        super().__init__(learning_rate)

    def get_lr(self) -> float:
        if not self.decay or self.half == 0:
            return self.base_lr
        done = max(0, self.last_epoch + 1 - self.half)
        return self.base_lr * max(0.0, 1.0 - done / self.half)


class UGATIT:
    """The six networks, two Adam optimisers and the learning-rate schedule of one experiment (`cfg`).

    `step(real_A, real_B)` runs one iteration on given batches ([N, 3, S, S] in [-1, 1]) and returns the loss
    terms; `state()` / `load_state()` are what a checkpoint holds. `world_size` > 1: gradients are averaged over
    that many data-parallel processes (the caller has started the process group and synchronised the weights).
    """

    def __init__(self, cfg: Config, world_size: int = 1, one_read: bool | None = None) -> None:
        self.cfg = cfg
        on_gpu = paddle.device.get_device().startswith("gpu")
        if cfg.train.amp and not on_gpu:
            raise AmpUnavailableError(
                f"train.amp=true needs a GPU (automatic mixed precision runs float16 kernels), but this process "
                f"runs on '{paddle.device.get_device()}'; set train.amp=false to train in float32 on the CPU")
        if cfg.train.amp and cfg.train.amp_dtype == "bfloat16" and not paddle.amp.is_bfloat16_supported():
            raise AmpUnavailableError("train.amp_dtype=bfloat16 needs a GPU with bfloat16 kernels (compute capability "
                                      "8.0 and up, e.g. A100); use train.amp_dtype=float16")
        self.world_size = world_size
        configure_gpu_kernels(cfg.train.deterministic)  # cuDNN autotuning, or deterministic kernels
        self.dtype = "float64" if cfg.train.float64 else "float32"  # of the weights and of what they compute
        paddle.seed(cfg.train.seed)
        default_dtype = paddle.get_default_dtype()
        paddle.set_default_dtype(self.dtype)  # parameters and spectral-norm buffers are created in it
        try:
            with unique_name.guard():  # parameter names (and so optimiser state keys) independent of process history
                self.nets = build_networks(cfg.model)
        finally:
            paddle.set_default_dtype(default_dtype)
        t = cfg.train
        for name in (*GENERATORS, *DISCRIMINATORS):  # generator blocks and discriminator conv stacks: only their
            # inputs kept for backward (the conv stacks after spectral norm, which runs once per forward)
            self.nets[name].recompute = t.recompute
        self.lr_schedule = HalfLinearDecay(t.lr, t.iterations, t.decay_lr)
        self.G_params = [p for n in GENERATORS for p in self.nets[n].parameters()]
        self.D_params = [p for n in DISCRIMINATORS for p in self.nets[n].parameters()]
        self.G_optim = self._adam(self.G_params)
        self.D_optim = self._adam(self.D_params)
        # One read of the device per iteration (GPUs; see the module docstring), or one per optimiser step (CPUs).
        self.one_read = on_gpu if one_read is None else one_read
        if t.amp and not self.one_read:
            raise ValueError("UGATIT(one_read=False) with train.amp=true: mixed precision skips overflowed steps on "
                             "the device, which needs one read per iteration; leave one_read unset (or True)")
        self.D_adam = ConditionalAdam(self.D_optim, self.D_params)  # D's step when one_read
        # One loss scaler per optimiser (AMP only): each adapts to its own loss's gradients.
        self.amp_skips = OverflowSkips(t.amp_max_skipped) if t.amp else None
        self.G_amp = AmpStep("G", t.amp_dtype, self.amp_skips) if t.amp else None
        self.D_amp = AmpStep("D", t.amp_dtype, self.amp_skips) if t.amp else None
        self.iteration = 0  # completed iterations
        self.stop_agreed = False  # whether any process voted to stop in the last step (see `step`'s stop_vote)

    def _adam(self, params: list[paddle.Tensor]) -> paddle.optimizer.Adam:
        t = self.cfg.train
        # The coupled L2 of torch.optim.Adam's weight_decay is added to the gradients in place (`_add_weight_decay`):
        # Paddle's own (a float weight_decay) adds it into a new copy of every gradient, the same values, but
        # 2.2 GB more at the full model's G update. The multi-tensor update (one fused step over all parameters) is about 1.6x faster on CPU than one
        # update per parameter, equal to rounding; Paddle has it for float32, not float64.
        return paddle.optimizer.Adam(
            learning_rate=self.lr_schedule, beta1=t.beta1, beta2=t.beta2, epsilon=1e-8,
            parameters=params, weight_decay=None, use_multi_tensor=self.dtype == "float32",
        )

    def set_train_mode(self, training: bool) -> None:
        for net in self.nets.values():
            net.train() if training else net.eval()

    # ------------------------------------------------------------------ one iteration
    def step(self, real_A: paddle.Tensor, real_B: paddle.Tensor,
             stop_vote: Callable[[], bool] | None = None) -> dict[str, float]:
        """One official iteration (D step, G step, rho clipping, lr step); returns the loss terms:
        D/total, D/A, D/B, G/total, G/A, G/B and the unweighted G/{adv, adv_cam, cycle, identity, cam}_{A, B}
        ("A": the objectives of translating into domain A).

        `stop_vote()`, if given, is asked once, at the G step, whether this process wants training to stop after
        this iteration; the answers of all processes are summed in the G loss's all-reduce (no collective of
        their own) and `stop_agreed` is set to whether any said yes (the same value in every process)."""
        g_ab, g_ba = self.nets["genA2B"], self.nets["genB2A"]
        d_ga, d_gb, d_la, d_lb = (self.nets[n] for n in DISCRIMINATORS)
        w = self.cfg.loss
        reuse = self.cfg.train.reuse_fakes
        real_A, real_B = real_A.astype(self.dtype), real_B.astype(self.dtype)

        # --- translate, then the D step: real vs fake for each discriminator
        with self._autocast():
            fake_A2B, fake_A2B_cam, _ = g_ab(real_A)
            fake_B2A, fake_B2A_cam, _ = g_ba(real_B)
            # The official code feeds the D step the fakes undetached, so its D backward also runs through both
            # generators (gradients the G step then clears): reuse_fakes=false keeps that cost, values are the same.
            d_fake_A2B, d_fake_B2A = (fake_A2B.detach(), fake_B2A.detach()) if reuse else (fake_A2B, fake_B2A)
            D_loss_A = losses.discriminator_loss(w, d_ga, d_la, real_A, d_fake_B2A)
            D_loss_B = losses.discriminator_loss(w, d_gb, d_lb, real_B, d_fake_A2B)
            D_loss = D_loss_A + D_loss_B
        d_terms = {"D/A": D_loss_A, "D/B": D_loss_B}
        d_reads = {"D/total": D_loss, **d_terms,
                   **self._backward("D", D_loss, self.D_params, self.D_optim, self.D_amp)}
        if self.one_read:  # applied or not on the device; the host learns which with the G step's read
            self._add_weight_decay(self.D_params)
            self.D_adam.step_if(_all_finite(d_reads[_total("D")], d_reads.get(_overflow("D"))))
        else:
            values = _read_terms(d_reads)
            if self._step_taken("D", values, d_terms, self.D_amp):
                self._add_weight_decay(self.D_params)
                _optimizer_step(self.D_optim)
        self.D_optim.clear_grad(set_to_zero=False)  # freed now, not held through the G step's backward (its peak)

        # --- G step (the discriminators as constants: their weight gradients would only be thrown away)
        with self._autocast(), _constants(self.D_params):
            if not reuse:  # the official code's second forward: same values, twice the cost
                fake_A2B, fake_A2B_cam, _ = g_ab(real_A)
                fake_B2A, fake_B2A_cam, _ = g_ba(real_B)
            fake_A2B2A, fake_A2A, fake_A2A_cam = _cycle_and_identity(g_ba, fake_A2B, real_A)
            fake_B2A2B, fake_B2B, fake_B2B_cam = _cycle_and_identity(g_ab, fake_B2A, real_B)
            # towards A: genB2A translates B, cycles A -> B -> A, keeps A; its CAM: B input -> 1, A input -> 0
            G_loss_A, g_A = losses.generator_loss(w, d_ga, d_la, real_A, fake_B2A, fake_A2B2A, fake_A2A,
                                                  fake_B2A_cam, fake_A2A_cam)
            G_loss_B, g_B = losses.generator_loss(w, d_gb, d_lb, real_B, fake_A2B, fake_B2A2B, fake_B2B,
                                                  fake_A2B_cam, fake_B2B_cam)
            G_loss = G_loss_A + G_loss_B
        g_terms = {f"G/{name}_{d}": value for name in g_A for d, value in (("A", g_A[name]), ("B", g_B[name]))}
        g_reads = {"G/total": G_loss, "G/A": G_loss_A, "G/B": G_loss_B, **g_terms,
                   **self._backward("G", G_loss, self.G_params, self.G_optim, self.G_amp, stop_vote)}
        if self.one_read:
            values = _read_terms({**d_reads, **g_reads})
            if self._step_taken("D", values, d_terms, self.D_amp):
                self.D_adam.advance()
        else:
            values.update(_read_terms(g_reads))
        if stop_vote is not None:
            self.stop_agreed = values[_VOTES] > 0
        if self._step_taken("G", values, g_terms, self.G_amp):
            self._add_weight_decay(self.G_params)
            _optimizer_step(self.G_optim)
        self.G_optim.clear_grad(set_to_zero=False)

        for name in GENERATORS:
            clip_rho(self.nets[name])
        self.lr_schedule.step()
        self.iteration += 1

        return {name: value for name, value in values.items() if name.startswith(("D/", "G/"))}

    def _backward(self, name: str, loss: paddle.Tensor, params: list[paddle.Tensor],
                  optimizer: paddle.optimizer.Optimizer, amp: AmpStep | None,
                  stop_vote: Callable[[], bool] | None = None) -> dict[str, paddle.Tensor]:
        """Backward of optimiser `name`'s `loss` (scaled under AMP; safe on NaN: `models.layers.global_max`), the
        gradients of `params` averaged over the processes (and unscaled under AMP). Returns, on the device, what
        the host will read to decide the step (`_step_taken`): the loss summed over the processes (so that all stop
        or skip together), the number of processes whose `stop_vote()` said yes (with the sum, in one all-reduce),
        and under float16 AMP whether a gradient overflowed."""
        vote = stop_vote() if stop_vote is not None else None
        optimizer.clear_grad(set_to_zero=False)  # none left by a previous step but a stopped one; freed, not zeroed
        loss.backward() if amp is None else amp.backward(loss)
        if self.world_size > 1:
            fused_allreduce_gradients(params, None)  # bucketed all-reduce, scaled by 1 / world size: the mean
        total_and_votes = self._global_sum(loss, vote)
        reads = {_total(name): total_and_votes[0], _VOTES: total_and_votes[1]}
        overflow = amp.unscale(params) if amp is not None else None
        if overflow is not None:
            reads[_overflow(name)] = overflow
        return reads

    def _step_taken(self, name: str, values: Mapping[str, float], terms: Iterable[str], amp: AmpStep | None) -> bool:
        """Whether optimiser `name`'s step goes ahead, from the `values` read (`_backward`'s and the loss `terms`'):
        without AMP, if the loss is finite, else NonFiniteLossError naming the bad `terms` (a NaN must never reach
        the weights); under AMP, unless the loss is not finite or a gradient overflowed (a skipped step, counted,
        see `amp.py`)."""
        total, iteration = values[_total(name)], self.iteration + 1
        if amp is None:
            _check_finite(total, values, terms, iteration)
            return True
        return amp.step_taken(math.isfinite(total), bool(values.get(_overflow(name), False)), iteration,
                              lambda: _bad_terms(values, terms))

    def _add_weight_decay(self, params: Sequence[paddle.Tensor]) -> None:
        """grad += weight_decay * param, in place, for each of `params` that has a gradient (coupled L2, as torch
        Adam's weight_decay and Paddle's L2Decay: the same two operations, so the same values)."""
        if not self.cfg.train.weight_decay:
            return
        with paddle.no_grad():
            for p in params:
                if p.grad is not None:
                    p.grad.add_(paddle.scale(p, self.cfg.train.weight_decay))

    def _autocast(self) -> contextlib.AbstractContextManager:
        """`paddle.amp.auto_cast` (O1) when `train.amp` is on, else nothing."""
        return autocast(self.cfg.train.amp_dtype) if self.cfg.train.amp else contextlib.nullcontext()

    def _global_sum(self, value: paddle.Tensor, vote: bool | None = None) -> paddle.Tensor:
        """[`value` summed over the data-parallel processes, the number of processes whose `vote` is True],
        float32 [2] (float64 for a float64 `value`), in one all-reduce (without one in a single process); the count is 0 when `vote` is None."""
        dtype = "float64" if value.dtype == paddle.float64 else "float32"  # float16 sums could overflow
        pair = paddle.stack([value.detach().reshape([]).astype(dtype), paddle.full([], float(bool(vote)), dtype=dtype)])
        if self.world_size > 1:
            paddle.distributed.all_reduce(pair)
        return pair

    # ------------------------------------------------------------------ state
    def state(self) -> dict[str, Any]:
        """Everything a training checkpoint holds (numpy arrays), for `checkpoint.save`."""
        payload = checkpoint.model_payload(self.cfg.model, {n: net.state_dict() for n, net in self.nets.items()})
        payload.update(
            iteration=self.iteration,
            config=self.cfg.to_dict(),
            optimizers={"G": checkpoint.to_numpy(self.G_optim.state_dict()),
                        "D": checkpoint.to_numpy(self.D_optim.state_dict())},
            lr_scheduler=self.lr_schedule.state_dict(),
        )
        if self.G_amp is not None:
            payload["grad_scalers"] = {"G": self.G_amp.state_dict(), "D": self.D_amp.state_dict()}
        return payload

    def load_state(self, payload: Mapping[str, Any], path: str = "checkpoint", networks: bool = True) -> None:
        """Restore a training checkpoint (networks, optimisers, schedule, iteration); weights-only files
        (converted official checkpoints) restore the networks and start at iteration 0. `networks=False`: all
        but the networks (a data-parallel resume, where they come from rank 0). The optimisers' accumulators are
        created here (`optimizer_state.materialise`) and the checkpoint's copied into them; an optimiser's state
        without accumulators (`{}`: a data-parallel resume, where they come from rank 0 in place) leaves them at
        their initial values."""
        if networks:
            checkpoint.load_networks(self.nets, payload, path)
        if "optimizers" in payload:
            optimizer_state.load(self.G_optim, self.G_params, payload["optimizers"]["G"], path, "optimizers/G")
            optimizer_state.load(self.D_optim, self.D_params, payload["optimizers"]["D"], path, "optimizers/D")
            self.D_adam.forget_beta_powers()
            self.lr_schedule.set_state_dict(payload["lr_scheduler"])
            self.iteration = int(payload["iteration"])
        if self.G_amp is not None and "grad_scalers" in payload:
            self.G_amp.load_state_dict(payload["grad_scalers"]["G"])
            self.D_amp.load_state_dict(payload["grad_scalers"]["D"])

    def optimizer_tensors(self) -> list[paddle.Tensor]:
        """The two optimisers' accumulators as live tensors (G's, then D's, each by name: the same list in every
        process), once they exist (after `load_state` of a checkpoint with optimiser state, or the first step)."""
        return [*optimizer_state.accumulators(self.G_optim).values(),
                *optimizer_state.accumulators(self.D_optim).values()]


@contextlib.contextmanager
def _constants(params: Sequence[paddle.Tensor]) -> Iterator[None]:
    """Within the block, `params` enter the autograd graph as constants (no gradient computed for them);
    gradients still flow through the layers that use them to their inputs."""
    flags = [p.stop_gradient for p in params]
    for p in params:
        p.stop_gradient = True
    try:
        yield
    finally:
        for p, flag in zip(params, flags):
            p.stop_gradient = flag


def _cycle_and_identity(generator: paddle.nn.Layer, fake: paddle.Tensor,
                        real: paddle.Tensor) -> tuple[paddle.Tensor, paddle.Tensor, paddle.Tensor]:
    """`generator` on a fake of the other domain (the cycle back) and on a real image of its own domain (the
    identity), fake and real [N, 3, H, W], as one batch [2N, 3, H, W]: every layer of a generator works on each
    image alone (instance and layer statistics, the MLP on each image's features), so the values are those of two
    calls, with one pass over the weights and one weight gradient per layer instead of two to add (the full
    model's `FC.0`: 1 GiB). Returns (cycle [N, 3, H, W], identity [N, 3, H, W], identity's CAM logit [N, 2])."""
    out, cam_logit, _ = generator(paddle.concat([fake, real]))
    n = fake.shape[0]
    return out[:n], out[n:], cam_logit[n:]


def _optimizer_step(optimizer: paddle.optimizer.Optimizer) -> None:
    """`optimizer.step()` with Adam's state variables named after their parameters only (the first step
    creates them unless a resume did, `optimizer_state.materialise`; outside a fresh name scope their names would
    depend on everything built before), so that a checkpoint's optimiser state restores in any process."""
    with unique_name.guard():
        optimizer.step()


_VOTES = "stop votes"  # read with the G loss: the number of processes that voted to stop


def _total(name: str) -> str:
    """The key of optimiser `name`'s loss summed over the processes, among the values read."""
    return f"{name} loss over the processes"


def _overflow(name: str) -> str:
    """The key of whether one of optimiser `name`'s gradients overflowed (float16 AMP), among the values read."""
    return f"{name} gradient overflow"


def _all_finite(total: paddle.Tensor, overflow: paddle.Tensor | None) -> paddle.Tensor:
    """On the device: `total` is finite and, if given, `overflow` false (bool, one element)."""
    finite = paddle.isfinite(total).reshape([])
    return finite if overflow is None else paddle.logical_and(finite, paddle.logical_not(overflow.reshape([])))


def _read_terms(terms: Mapping[str, paddle.Tensor]) -> dict[str, float]:
    """`terms` (scalar tensors) as Python floats, in one device-to-host copy: one synchronisation with the
    device, however many terms."""
    stacked = paddle.stack([t.reshape([]).astype("float64") for t in terms.values()])  # float64 holds float16/32
    return dict(zip(terms, stacked.numpy().tolist()))


def _check_finite(total: float, values: Mapping[str, float], names: Iterable[str], iteration: int) -> None:
    """If `total` (the loss summed over the processes) is NaN/inf, raise NonFiniteLossError naming those of the
    terms `names` whose `values` are NaN/inf. Checked before the optimiser step: a NaN must never reach the
    weights (the backward before it is safe on NaN: `models.layers.global_max`)."""
    if math.isfinite(total):
        return
    raise NonFiniteLossError(
        f"non-finite loss at iteration {iteration}: {_bad_terms(values, names)}; "
        f"training stopped, the last checkpoint on disk is the last good state (try a lower train.lr)"
    )


def _bad_terms(values: Mapping[str, float], names: Iterable[str]) -> str:
    """The non-finite ones of the terms `names` with their `values` ("in another data-parallel process" if none
    here)."""
    bad = [k for k in names if not math.isfinite(values[k])]
    return ", ".join(f"{k}={values[k]}" for k in bad) if bad else "in another data-parallel process"
