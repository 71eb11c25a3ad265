"""Training U-GAT-IT: networks, optimisers, the schedule and the loop.

One iteration, exactly as the official code (`UGATIT.train`) but without its wasted work:

1. translate: `fake_A2B = genA2B(real_A)`, `fake_B2A = genB2A(real_B)` (once; the official code runs the
   generators again for the G step, which gives identical fakes because G has not changed in between);
2. D step: each of the four discriminators sees its real batch and the detached fake; LSGAN losses on
   patch and CAM logits; one Adam step over all discriminator parameters;
3. G step: cycle (`A -> B -> A`), identity (`A -> A` through genB2A) and adversarial terms plus the CAM
   classification term; one Adam step over both generators' parameters;
4. clamp `rho` of every AdaILN/ILN to [0, 1]; advance the learning-rate schedule.
"""

from __future__ import annotations

import math
import signal
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import paddle
from paddle.utils import unique_name

from . import checkpoint, losses
from .config import Config, config_from_dict, format_config, load_config, save_config
from .data import ImageFolderDataset, build_train_loader, check_layout
from .models import DISCRIMINATORS, GENERATORS, ILN, AdaILN, ModelArgs, build_networks, clip_rho
from .visualize import sample_sheet, save_png, translation_strips


class NonFiniteLossError(RuntimeError):
    """Training produced NaN or infinity; the message names the iteration and the loss term."""


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


def model_args(cfg: Config) -> ModelArgs:
    m = cfg.model
    return ModelArgs(m.img_size, m.ch, m.n_res, m.light, m.global_layers, m.local_layers)


class Trainer:
    """The six networks, two Adam optimisers and the learning-rate schedule of one experiment.

    Build from a `Config`; `train_step(real_A, real_B)` runs one iteration on given batches
    ([N, 3, S, S] float32 in [-1, 1]); `train()` runs the whole loop with data, logging and checkpoints.
    """

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.args = model_args(cfg)
        paddle.seed(cfg.train.seed)
        with unique_name.guard():  # parameter names (and so optimiser state keys) independent of process history
            self.nets = build_networks(self.args)
        t, w = cfg.train, cfg.loss
        self.weights = losses.LossWeights(w.adv_weight, w.cycle_weight, w.identity_weight, w.cam_weight)
        self.lr_schedule = HalfLinearDecay(t.lr, t.iterations, t.decay_lr)
        self.G_optim = self._adam([p for n in GENERATORS for p in self.nets[n].parameters()])
        self.D_optim = self._adam([p for n in DISCRIMINATORS for p in self.nets[n].parameters()])
        self.iteration = 0  # completed iterations
        self.interrupted: str | None = None  # the signal that stopped the last `train()`, if any

    def _adam(self, params: list[paddle.Tensor]) -> paddle.optimizer.Adam:
        t = self.cfg.train
        # A float weight_decay is coupled L2 added to the gradient, like torch.optim.Adam's weight_decay.
        return paddle.optimizer.Adam(
            learning_rate=self.lr_schedule, beta1=t.beta1, beta2=t.beta2, epsilon=1e-8,
            parameters=params, weight_decay=t.weight_decay,
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

        fake_A2B, fake_A2B_cam, _ = g_ab(real_A)
        fake_B2A, fake_B2A_cam, _ = g_ba(real_B)

        # --- D step: real vs detached fake for each discriminator
        adv_ga, cam_ga = losses.discriminator_terms(d_ga(real_A), d_ga(fake_B2A.detach()))
        adv_la, cam_la = losses.discriminator_terms(d_la(real_A), d_la(fake_B2A.detach()))
        adv_gb, cam_gb = losses.discriminator_terms(d_gb(real_B), d_gb(fake_A2B.detach()))
        adv_lb, cam_lb = losses.discriminator_terms(d_lb(real_B), d_lb(fake_A2B.detach()))
        D_loss_A = w.adv * (adv_ga + cam_ga + adv_la + cam_la)
        D_loss_B = w.adv * (adv_gb + cam_gb + adv_lb + cam_lb)
        D_loss = D_loss_A + D_loss_B
        _check_finite(D_loss, {"D/A": D_loss_A, "D/B": D_loss_B}, self.iteration + 1)  # before NaNs reach backward
        self.D_optim.clear_grad()
        D_loss.backward()
        _optimizer_step(self.D_optim)

        # --- G step
        if not self.cfg.train.reuse_fakes:  # the official code's second forward: same values, twice the cost
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
        _check_finite(G_loss, {"G/adv_A": g_adv_ga + g_adv_la, "G/adv_cam_A": g_cam_ga + g_cam_la, "G/adv_B": g_adv_gb + g_adv_lb,
                       "G/adv_cam_B": g_cam_gb + g_cam_lb, "G/cycle_A": cycle_A, "G/cycle_B": cycle_B,
                       "G/identity_A": identity_A, "G/identity_B": identity_B, "G/cam_A": cam_A, "G/cam_B": cam_B},
                      self.iteration + 1)
        self.G_optim.clear_grad()
        G_loss.backward()
        _optimizer_step(self.G_optim)

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

    def save_checkpoint(self) -> Path:
        path = checkpoint.save(self.state(), checkpoint.checkpoint_path(self.cfg.output_dir, self.iteration))
        checkpoint.prune(self.cfg.output_dir, self.cfg.train.keep_checkpoints)
        return path

    # ------------------------------------------------------------------ the loop
    def train(self, resume: str | bool = False, stop_after: int | None = None) -> Path:
        """Train until `train.iterations` (or `stop_after`), resuming from the latest checkpoint in
        `output_dir` (`resume=True`) or from a given file. Returns the path of the final checkpoint."""
        cfg, t = self.cfg, self.cfg.train
        out = Path(cfg.output_dir)
        if resume:
            path = checkpoint.latest_checkpoint(out) if resume is True else Path(resume)
            if path is None:
                print(f"no checkpoint in {out / checkpoint.CHECKPOINT_DIR}; starting from scratch")
            else:
                self.load_state(checkpoint.load(path), str(path))
                print(f"resumed from {path} at iteration {self.iteration}")
        end = t.iterations if stop_after is None else min(stop_after, t.iterations)
        folders = check_layout(cfg.data.root)
        out.mkdir(parents=True, exist_ok=True)
        save_config(cfg, out / "config.yaml")
        print(format_config(cfg))

        loaders = [build_train_loader(folders[f"train{d}"], self.args.img_size, t.batch_size, t.seed, domain_id=i,
                                      start_iteration=self.iteration, num_workers=cfg.data.num_workers,
                                      use_shared_memory=cfg.data.use_shared_memory, strict=cfg.data.strict,
                                      stop_iteration=end)
                   for i, d in enumerate("AB")]
        samples = self._sample_images(folders)
        writer = _visualdl_writer(out / "vdl")
        stop = _StopRequest()
        last_saved = None
        self.set_train_mode(True)
        progress = _progress(self.iteration, end)
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
                    if it % t.sample_every == 0 or it == end:
                        self._write_samples(samples, out, writer, it)
                    if it % t.save_every == 0:
                        last_saved = self.save_checkpoint()
                    if stop.requested:
                        print(f"\n{stop.requested} received: saving a checkpoint at iteration {it}", file=sys.stderr)
                        break
        finally:
            progress.close()
            if writer is not None:
                writer.close()
        if last_saved is None or checkpoint.list_checkpoints(out)[-1][0] != self.iteration:
            last_saved = self.save_checkpoint()
        self.interrupted = stop.requested
        print(f"checkpoint: {last_saved}")
        return last_saved

    def _sample_images(self, folders: Mapping[str, Path]) -> dict[str, paddle.Tensor]:
        """Fixed images for the sample sheets (the first train and test images of each domain, test
        transform): sampling never consumes training batches."""
        n, size = self.cfg.train.sample_count, self.args.img_size
        result = {}
        for d in "AB":
            images = []
            for split in ("train", "test"):
                dataset = ImageFolderDataset(folders[f"{split}{d}"], size, train=False)
                images += [dataset[i] for i in range(min(n, len(dataset)))]
            result[d] = paddle.to_tensor(np.stack(images))
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
    if bad:
        raise NonFiniteLossError(
            f"non-finite loss at iteration {iteration}: {', '.join(f'{k}={values[k]}' for k in bad)}; "
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


def _progress(start: int, end: int) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=end, initial=start, unit="it", dynamic_ncols=True, mininterval=1.0, smoothing=0.05)


def _visualdl_writer(logdir: Path) -> Any:
    try:
        from visualdl import LogWriter
    except ImportError:  # VisualDL is optional at run time
        return None
    return LogWriter(logdir=str(logdir))
