"""Training U-GAT-IT: networks, optimisers, the schedule and the loop.

One iteration, exactly as the official code (`UGATIT.train`) but without its wasted work:

1. translate: `fake_A2B = genA2B(real_A)`, `fake_B2A = genB2A(real_B)` (once; the official code runs the
   generators again for the G step, which gives identical fakes because G has not changed in between);
2. D step: each of the four discriminators sees its real batch and the detached fake; LSGAN losses on
   patch and CAM logits; one Adam step over all discriminator parameters;
3. G step: cycle (`A -> B -> A`), identity (`A -> A` through genB2A) and adversarial terms plus the CAM
   classification term; one Adam step over both generators' parameters (the discriminators enter this step
   as constants: the official code computes their weight gradients here only to clear them);
4. clamp `rho` of every AdaILN/ILN to [0, 1]; advance the learning-rate schedule.

Data parallel (`python -m paddle.distributed.launch --nproc_per_node N tools/train.py ...`): every process
holds all six networks, takes its own `train.batch_size` share of each global batch, and the gradients are
averaged over the processes before each optimiser step, so N processes with batch B train exactly like one
process with batch N*B. Only rank 0 logs and writes checkpoints and samples.

Mixed precision (`train.amp`, GPU only): the forwards run under `paddle.amp.auto_cast` (O1: convolutions
and matrix products in float16), each optimiser step goes through its own `paddle.amp.GradScaler`.
"""

from __future__ import annotations

import contextlib
import math
import signal
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import paddle
from paddle.distributed.fleet.utils.hybrid_parallel_util import fused_allreduce_gradients
from paddle.utils import unique_name

from ..config import Config, ConfigError, config_from_dict, format_config, load_config, save_config
from ..data import DECODE_ERRORS, build_train_loader, check_layout, eval_transform, find_images, load_rgb
from ..formats import checkpoint
from ..models import DISCRIMINATORS, GENERATORS, ILN, AdaILN, build_networks, clip_rho
from ..visualize import sample_sheet, save_png, translation_strips
from . import losses


class NonFiniteLossError(RuntimeError):
    """Training produced NaN or infinity; the message names the iteration and the loss term."""


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


class Trainer:
    """The six networks, two Adam optimisers and the learning-rate schedule of one experiment.

    Build from a `Config`; `train_step(real_A, real_B)` runs one iteration on given batches
    ([N, 3, S, S] float32 in [-1, 1]); `train()` runs the whole loop with data, logging and checkpoints.
    """

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.args = cfg.model
        if cfg.train.amp and not paddle.device.get_device().startswith("gpu"):
            raise AmpUnavailableError(
                f"train.amp=true needs a GPU (automatic mixed precision runs float16 kernels), but this process "
                f"runs on '{paddle.device.get_device()}'; set train.amp=false to train in float32 on the CPU")
        self.rank, self.world_size = _data_parallel()
        self.dtype = "float64" if cfg.train.float64 else "float32"  # of the weights and of what they compute
        paddle.seed(cfg.train.seed)
        default_dtype = paddle.get_default_dtype()
        paddle.set_default_dtype(self.dtype)  # parameters and spectral-norm buffers are created in it
        try:
            with unique_name.guard():  # parameter names (and so optimiser state keys) independent of process history
                self.nets = build_networks(self.args)
        finally:
            paddle.set_default_dtype(default_dtype)
        t, w = cfg.train, cfg.loss
        self.weights = losses.LossWeights(w.adv_weight, w.cycle_weight, w.identity_weight, w.cam_weight)
        self.lr_schedule = HalfLinearDecay(t.lr, t.iterations, t.decay_lr)
        self.G_params = [p for n in GENERATORS for p in self.nets[n].parameters()]
        self.D_params = [p for n in DISCRIMINATORS for p in self.nets[n].parameters()]
        self.G_optim = self._adam(self.G_params)
        self.D_optim = self._adam(self.D_params)
        # One loss scaler per optimiser (AMP only): each adapts to its own loss's gradients.
        self.G_scaler = _grad_scaler() if t.amp else None
        self.D_scaler = _grad_scaler() if t.amp else None
        if self.world_size > 1:
            _broadcast_from_rank0(self.nets)  # same start everywhere whatever each process drew
        self.iteration = 0  # completed iterations
        self.interrupted: str | None = None  # the signal that stopped the last `train()`, if any

    def _adam(self, params: list[paddle.Tensor]) -> paddle.optimizer.Adam:
        t = self.cfg.train
        # A float weight_decay is coupled L2 added to the gradient, like torch.optim.Adam's weight_decay.
        # The multi-tensor update (one fused step over all parameters) is about 1.6x faster on CPU than one
        # update per parameter, equal to rounding; Paddle has it for float32, not float64.
        return paddle.optimizer.Adam(
            learning_rate=self.lr_schedule, beta1=t.beta1, beta2=t.beta2, epsilon=1e-8,
            parameters=params, weight_decay=t.weight_decay, use_multi_tensor=self.dtype == "float32",
        )

    def set_train_mode(self, training: bool) -> None:
        for net in self.nets.values():
            net.train() if training else net.eval()

    # ------------------------------------------------------------------ one iteration
    def train_step(self, real_A: paddle.Tensor, real_B: paddle.Tensor) -> dict[str, float]:
        """One official iteration (D step, G step, rho clipping, lr step); returns the loss terms."""
        g_ab, g_ba = self.nets["genA2B"], self.nets["genB2A"]
        d_ga, d_gb, d_la, d_lb = (self.nets[n] for n in DISCRIMINATORS)
        w = self.weights

        reuse = self.cfg.train.reuse_fakes
        real_A, real_B = real_A.astype(self.dtype), real_B.astype(self.dtype)
        with self._autocast():
            fake_A2B, fake_A2B_cam, _ = g_ab(real_A)
            fake_B2A, fake_B2A_cam, _ = g_ba(real_B)
            # The official code feeds the D step the fakes undetached, so its D backward also runs through both
            # generators (gradients the G step then clears): reuse_fakes=false keeps that cost, values are the same.
            d_fake_A2B, d_fake_B2A = (fake_A2B.detach(), fake_B2A.detach()) if reuse else (fake_A2B, fake_B2A)

            # --- D step: real vs fake for each discriminator
            adv_ga, cam_ga = losses.discriminator_terms(d_ga(real_A), d_ga(d_fake_B2A))
            adv_la, cam_la = losses.discriminator_terms(d_la(real_A), d_la(d_fake_B2A))
            adv_gb, cam_gb = losses.discriminator_terms(d_gb(real_B), d_gb(d_fake_A2B))
            adv_lb, cam_lb = losses.discriminator_terms(d_lb(real_B), d_lb(d_fake_A2B))
            D_loss_A = w.adv * (adv_ga + cam_ga + adv_la + cam_la)
            D_loss_B = w.adv * (adv_gb + cam_gb + adv_lb + cam_lb)
            D_loss = D_loss_A + D_loss_B
        # before NaNs reach backward; the sum over processes, so that all stop together
        _check_finite(self._global_sum(D_loss), {"D/A": D_loss_A, "D/B": D_loss_B}, self.iteration + 1)
        self.D_optim.clear_grad(set_to_zero=False)  # freed, not zero-filled: the backward writes them afresh
        self._backward_and_step(D_loss, self.D_params, self.D_optim, self.D_scaler)

        # --- G step (the discriminators as constants: their weight gradients would only be thrown away)
        with self._autocast(), _constants(self.D_params):
            if not reuse:  # the official code's second forward: same values, twice the cost
                fake_A2B, fake_A2B_cam, _ = g_ab(real_A)
                fake_B2A, fake_B2A_cam, _ = g_ba(real_B)
            fake_A2B2A, _, _ = g_ba(fake_A2B)
            fake_B2A2B, _, _ = g_ab(fake_B2A)
            fake_A2A, fake_A2A_cam, _ = g_ba(real_A)
            fake_B2B, fake_B2B_cam, _ = g_ab(real_B)

            g_adv_ga, g_cam_ga = losses.generator_adversarial_terms(d_ga(fake_B2A))
            g_adv_la, g_cam_la = losses.generator_adversarial_terms(d_la(fake_B2A))
            g_adv_gb, g_cam_gb = losses.generator_adversarial_terms(d_gb(fake_A2B))
            g_adv_lb, g_cam_lb = losses.generator_adversarial_terms(d_lb(fake_A2B))
            cycle_A, cycle_B = losses.l1(fake_A2B2A, real_A), losses.l1(fake_B2A2B, real_B)
            identity_A, identity_B = losses.l1(fake_A2A, real_A), losses.l1(fake_B2B, real_B)
            cam_A = losses.cam_term(fake_B2A_cam, fake_A2A_cam)  # genB2A: B input -> 1, A input -> 0
            cam_B = losses.cam_term(fake_A2B_cam, fake_B2B_cam)
            G_loss_A = (w.adv * (g_adv_ga + g_cam_ga + g_adv_la + g_cam_la) + w.cycle * cycle_A
                        + w.identity * identity_A + w.cam * cam_A)
            G_loss_B = (w.adv * (g_adv_gb + g_cam_gb + g_adv_lb + g_cam_lb) + w.cycle * cycle_B
                        + w.identity * identity_B + w.cam * cam_B)
            G_loss = G_loss_A + G_loss_B
        _check_finite(self._global_sum(G_loss), {"G/adv_A": g_adv_ga + g_adv_la, "G/adv_cam_A": g_cam_ga + g_cam_la, "G/adv_B": g_adv_gb + g_adv_lb,
                       "G/adv_cam_B": g_cam_gb + g_cam_lb, "G/cycle_A": cycle_A, "G/cycle_B": cycle_B,
                       "G/identity_A": identity_A, "G/identity_B": identity_B, "G/cam_A": cam_A, "G/cam_B": cam_B},
                      self.iteration + 1)
        self.G_optim.clear_grad(set_to_zero=False)
        self._backward_and_step(G_loss, self.G_params, self.G_optim, self.G_scaler)

        for name in GENERATORS:
            clip_rho(self.nets[name])
        self.lr_schedule.step()
        self.iteration += 1

        terms = {
            "D/total": D_loss, "D/A": D_loss_A, "D/B": D_loss_B,
            "G/total": G_loss, "G/A": G_loss_A, "G/B": G_loss_B,
            "G/adv_A": g_adv_ga + g_adv_la, "G/adv_cam_A": g_cam_ga + g_cam_la,
            "G/adv_B": g_adv_gb + g_adv_lb, "G/adv_cam_B": g_cam_gb + g_cam_lb,
            "G/cycle_A": cycle_A, "G/cycle_B": cycle_B, "G/identity_A": identity_A, "G/identity_B": identity_B,
            "G/cam_A": cam_A, "G/cam_B": cam_B,
        }
        return {k: float(v) for k, v in terms.items()}

    def _autocast(self) -> contextlib.AbstractContextManager:
        """`paddle.amp.auto_cast` (O1) when `train.amp` is on, else nothing."""
        return paddle.amp.auto_cast(level="O1") if self.cfg.train.amp else contextlib.nullcontext()

    def _backward_and_step(self, loss: paddle.Tensor, params: list[paddle.Tensor],
                           optimizer: paddle.optimizer.Optimizer, scaler: paddle.amp.GradScaler | None) -> None:
        """Backward, average the gradients of `params` (the optimiser's) over the processes, one optimiser step
        (through `scaler` under AMP)."""
        (loss if scaler is None else scaler.scale(loss)).backward()
        if self.world_size > 1:
            fused_allreduce_gradients(params, None)  # bucketed all-reduce, scaled by 1 / world size: the mean
        if scaler is None:
            _optimizer_step(optimizer)
        else:
            with unique_name.guard():
                scaler.step(optimizer)  # unscales; skips the step if a gradient overflowed
            scaler.update()

    def _global_sum(self, value: paddle.Tensor) -> paddle.Tensor:
        """`value` summed over the data-parallel processes (itself in a single process)."""
        if self.world_size == 1:
            return value
        total = value.detach().astype("float32").clone()
        paddle.distributed.all_reduce(total)
        return total

    # ------------------------------------------------------------------ state
    def state(self) -> dict[str, Any]:
        """Everything a checkpoint holds (numpy arrays), for `checkpoint.save`."""
        payload = checkpoint.model_payload(self.args, {n: net.state_dict() for n, net in self.nets.items()})
        payload.update(
            iteration=self.iteration,
            config=self.cfg.to_dict(),
            optimizers={"G": checkpoint.to_numpy(self.G_optim.state_dict()),
                        "D": checkpoint.to_numpy(self.D_optim.state_dict())},
            lr_scheduler=self.lr_schedule.state_dict(),
        )
        if self.G_scaler is not None:
            payload["grad_scalers"] = {"G": self.G_scaler.state_dict(), "D": self.D_scaler.state_dict()}
        return payload

    def load_state(self, payload: Mapping[str, Any], path: str = "checkpoint") -> None:
        """Restore a training checkpoint (networks, optimisers, schedule, iteration); weights-only files
        (converted official checkpoints) restore the networks and start at iteration 0."""
        checkpoint.load_networks(self.nets, payload, path)
        if "optimizers" in payload:
            self.G_optim.set_state_dict(payload["optimizers"]["G"])
            self.D_optim.set_state_dict(payload["optimizers"]["D"])
            self.lr_schedule.set_state_dict(payload["lr_scheduler"])
            self.iteration = int(payload["iteration"])
        if self.G_scaler is not None and "grad_scalers" in payload:
            self.G_scaler.load_state_dict(payload["grad_scalers"]["G"])
            self.D_scaler.load_state_dict(payload["grad_scalers"]["D"])

    def save_checkpoint(self) -> Path:
        """Write a checkpoint of the current iteration (rank 0 only: every process holds the same state)
        and prune old ones; returns its path on every rank."""
        path = checkpoint.checkpoint_path(self.cfg.output_dir, self.iteration)
        if self.rank == 0:
            checkpoint.save(self.state(), path)
            checkpoint.prune(self.cfg.output_dir, self.cfg.train.keep_checkpoints)
        return path

    # ------------------------------------------------------------------ the loop
    def train(self, resume: str | bool = False, stop_after: int | None = None) -> Path:
        """Train until `train.iterations` (or `stop_after`), resuming from the latest checkpoint in
        `output_dir` (`resume=True`) or from a given file. Returns the path of the final checkpoint.

        In a data-parallel job every process runs this; each reads the same checkpoint (any number of
        processes may resume it) and its own share of each batch; rank 0 alone prints and writes."""
        cfg, t = self.cfg, self.cfg.train
        out = Path(cfg.output_dir)
        main = self.rank == 0
        say = print if main else _silent
        if resume:
            path = checkpoint.latest_checkpoint(out) if resume is True else Path(resume)
            if path is None:
                say(f"no checkpoint in {out / checkpoint.CHECKPOINT_DIR}; starting from scratch")
            else:
                self.load_state(checkpoint.load(path), str(path))
                say(f"resumed from {path} at iteration {self.iteration}")
        end = t.iterations if stop_after is None else min(stop_after, t.iterations)
        folders = check_layout(cfg.data.root)
        if main:
            out.mkdir(parents=True, exist_ok=True)
            save_config(cfg, out / "config.yaml")
        say(format_config(cfg))
        if self.world_size > 1:
            say(f"data parallel: {self.world_size} processes x batch {t.batch_size} = global batch "
                f"{self.world_size * t.batch_size}")

        loaders = [build_train_loader(folders[f"train{d}"], self.args.img_size, t.batch_size, t.seed, domain_id=i,
                                      start_iteration=self.iteration, num_workers=cfg.data.num_workers,
                                      use_shared_memory=cfg.data.use_shared_memory, rank=self.rank,
                                      world_size=self.world_size, strict=cfg.data.strict, stop_iteration=end)
                   for i, d in enumerate("AB")]
        samples = self._sample_images(folders) if main else {}
        writer = _visualdl_writer(out / "vdl") if main else None
        stop = _StopRequest()
        last_saved = None
        self.set_train_mode(True)
        progress = _progress(self.iteration, end, enabled=main)
        try:
            with stop:
                for real_A, real_B in zip(*loaders):
                    start = time.perf_counter()
                    terms = self.train_step(real_A, real_B)
                    seconds = time.perf_counter() - start
                    it = self.iteration
                    progress.update(1)
                    progress.set_postfix_str(f"D {terms['D/total']:.3f} G {terms['G/total']:.3f}", refresh=False)
                    if writer is not None and (it % t.log_every == 0 or it == end):
                        self._log_scalars(writer, terms, it, seconds)
                    if main and (it % t.sample_every == 0 or it == end):
                        self._write_samples(samples, out, writer, it)
                    if it % t.save_every == 0:
                        last_saved = self.save_checkpoint()
                    if self._any_process(stop.requested is not None):  # all processes stop at the same iteration
                        stop.requested = stop.requested or "SIGTERM"
                        if main:
                            print(f"\n{stop.requested} received: saving a checkpoint at iteration {it}", file=sys.stderr)
                        break
        finally:
            progress.close()
            if writer is not None:
                writer.close()
        if not main:
            last_saved = checkpoint.checkpoint_path(out, self.iteration)
        elif last_saved is None or checkpoint.list_checkpoints(out)[-1][0] != self.iteration:
            last_saved = self.save_checkpoint()
        self.interrupted = stop.requested
        say(f"checkpoint: {last_saved}")
        return last_saved

    def _any_process(self, flag: bool) -> bool:
        """True if `flag` is true in any data-parallel process (`flag` itself in a single process)."""
        if self.world_size == 1:
            return flag
        value = paddle.to_tensor(int(flag), dtype="int32")
        paddle.distributed.all_reduce(value)
        return int(value) > 0

    def _sample_images(self, folders: Mapping[str, Path]) -> dict[str, paddle.Tensor]:
        """Fixed images for the sample sheets (the first readable train and test images of each domain, test
        transform): sampling never consumes training batches, and only these few files are decoded."""
        n, size = self.cfg.train.sample_count, self.args.img_size
        result = {}
        for d in "AB":
            images = []
            for split in ("train", "test"):
                found = []
                for path in find_images(folders[f"{split}{d}"]):
                    try:
                        found.append(eval_transform(load_rgb(path), size))
                    except DECODE_ERRORS:  # the training data set warns about unreadable files itself
                        continue
                    if len(found) == n:
                        break
                images += found
            result[d] = paddle.to_tensor(np.stack(images)).astype(self.dtype)
        return result

    def _write_samples(self, samples: Mapping[str, paddle.Tensor], out: Path, writer: Any, it: int) -> None:
        for name, src, source_gen, target_gen in (("A2B", "A", "genA2B", "genB2A"), ("B2A", "B", "genB2A", "genA2B")):
            sheet = sample_sheet(translation_strips(self.nets[source_gen], self.nets[target_gen], samples[src]))
            save_png(sheet, out / "samples" / f"{name}_{it:07d}.png")
            if writer is not None:
                writer.add_image(f"samples/{name}", sheet, it)

    def _log_scalars(self, writer: Any, terms: Mapping[str, float], it: int, seconds: float) -> None:
        for key, value in terms.items():
            writer.add_scalar(f"loss/{key}", value, it)
        writer.add_scalar("train/lr", self.lr_schedule.last_lr, it)
        writer.add_scalar("train/sec_per_iter", seconds, it)
        for name in GENERATORS:
            for kind, cls in (("adailn", AdaILN), ("iln", ILN)):
                rho = [float(m.rho.mean()) for m in self.nets[name].sublayers() if isinstance(m, cls)]
                if rho:
                    writer.add_scalar(f"rho/{name}_{kind}_mean", float(np.mean(rho)), it)

    # ------------------------------------------------------------------ constructors for notebooks
    @classmethod
    def from_file(cls, path: str, overrides: Sequence[str] = ()) -> "Trainer":
        return cls(load_config(path, overrides))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "Trainer":
        return cls(config_from_dict(values))


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


def _data_parallel() -> tuple[int, int]:
    """(rank, world size) of this process, initialising Paddle's process group when started by
    `paddle.distributed.launch` with more than one process; (0, 1) otherwise."""
    world_size = paddle.distributed.get_world_size()
    if world_size > 1 and not paddle.distributed.is_initialized():
        paddle.distributed.init_parallel_env()  # gloo on CPU (set by the launcher), NCCL on GPUs
    return paddle.distributed.get_rank(), world_size


def _broadcast_from_rank0(nets: Mapping[str, paddle.nn.Layer]) -> None:
    """Copy rank 0's parameters and buffers (spectral-norm u/v) to every process."""
    with paddle.no_grad():
        for net in nets.values():
            for tensor in net.state_dict().values():
                paddle.distributed.broadcast(tensor, src=0)


def _grad_scaler() -> paddle.amp.GradScaler:
    """A dynamic loss scaler with Paddle's defaults (initial scale 2^15, halved on overflow)."""
    return paddle.amp.GradScaler(init_loss_scaling=2.0**15)


def _silent(*args: Any, **kwargs: Any) -> None:
    """`print` for the ranks that must not print."""


def _optimizer_step(optimizer: paddle.optimizer.Optimizer) -> None:
    """`optimizer.step()` with Adam's state variables named after their parameters only (the first step
    creates them; outside a fresh name scope their names would depend on everything built before), so that
    a checkpoint's optimiser state restores in any process."""
    with unique_name.guard():
        optimizer.step()


def _check_finite(total: paddle.Tensor, terms: Mapping[str, paddle.Tensor], iteration: int) -> None:
    """If `total` is NaN/inf, raise NonFiniteLossError naming the bad terms. Checked before backward: Paddle's
    max-pool gradient corrupts memory on NaN inputs, and a NaN must never reach the weights."""
    if math.isfinite(float(total)):
        return
    values = {k: float(v) for k, v in terms.items()}
    bad = [k for k, v in values.items() if not math.isfinite(v)]
    where = ", ".join(f"{k}={values[k]}" for k in bad) if bad else "in another data-parallel process"
    raise NonFiniteLossError(
        f"non-finite loss at iteration {iteration}: {where}; "
        f"training stopped, the last checkpoint on disk is the last good state (try a lower train.lr)"
    )


class _StopRequest:
    """Within `with`, SIGINT/SIGTERM set `requested` (to the signal's name) instead of killing the process;
    a second signal interrupts at once."""

    def __init__(self) -> None:
        self.requested: str | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = signal.Signals(signum).name
        for sig, handler in self._previous.items():  # a second Ctrl-C falls through to the default
            signal.signal(sig, handler)

    def __enter__(self) -> "_StopRequest":
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (some notebook runners): keep the defaults
                pass
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _progress(start: int, end: int, enabled: bool = True) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=end, initial=start, unit="it", dynamic_ncols=True, mininterval=1.0, smoothing=0.05,
                disable=not enabled)


def _visualdl_writer(logdir: Path) -> Any:
    try:
        from visualdl import LogWriter
    except ImportError:  # VisualDL is optional at run time
        return None
    return LogWriter(logdir=str(logdir))
