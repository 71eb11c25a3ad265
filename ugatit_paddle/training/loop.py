"""The training loop around one `UGATIT` model: data, resume, logging, samples, checkpoints, signals, data parallel.

    trainer = Trainer(load_config("configs/selfie2anime.yaml"))
    trainer.train(resume=True)                                   # until train.iterations
    trainer.train(should_stop=lambda it: time.time() > deadline)  # or until a callback says so

Each iteration: one batch per domain from the resumable loaders (`data`), `model.step`, then the progress
report (`progress.make_progress`: a bar on a terminal or in a notebook, plain lines in a log file), VisualDL
scalars every `train.log_every`, sample sheets every `train.sample_every`, a checkpoint every
`train.save_every` and a generator file every `train.save_generators_every` iterations (and a checkpoint at
the end). SIGINT/SIGTERM (a notebook's interrupt too) or `should_stop` end training after the current
iteration with a checkpoint, so that `resume=True` continues exactly. A run holds its `output_dir`'s lock
(`run_lock`) from start to end: a second run on the same folder stops at once.

Data parallel (`python -m paddle.distributed.launch --nproc_per_node N tools/train.py ...`): every process
holds all six networks (rank 0's weights, broadcast at the start), takes its own `train.batch_size` share of
each global batch, and the step averages the gradients; all processes stop at the same iteration. Only
rank 0 prints, logs and writes checkpoints and samples. Whether to stop (a signal, `should_stop`) is voted on in
the G step's all-reduce of each iteration (`UGATIT.step`'s `stop_vote`: two collectives per iteration, not
three): a process votes at its G step, so a signal arriving later in an iteration is honoured one iteration
later, in every process alike, still with a checkpoint at the iteration where all stop.
"""

from __future__ import annotations

import contextlib
import enum
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import paddle

from ..config import Config, config_from_dict, format_config, load_config, save_config
from ..data import build_train_loader, check_layout
from ..data.archive import resolve_data_root
from ..formats import checkpoint
from ..models import GENERATORS, ILN, AdaILN
from ..visualize import sample_images, sample_sheets, save_sample_sheets
from .memory import peak_memory_mb, smallest_card_gb
from .progress import ProgressReporter, make_progress
from .run_lock import RunLockedError, run_lock
from .ugatit import UGATIT

class StopReason(str, enum.Enum):
    """Why training stopped before its last iteration (`Trainer.interrupted`); a str, printed as its value."""

    SIGINT = "SIGINT"  # Ctrl-C, or a notebook's interrupt
    SIGTERM = "SIGTERM"  # e.g. a job scheduler; also every process of a data-parallel job that another stopped
    SHOULD_STOP = "should_stop"  # the `should_stop` callback returned True
    TIME_LIMIT = "time limit"  # the demo's --time-limit (its `should_stop` callback; `demo.run`)

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


PEAK_MEMORY_AFTER = 2  # iterations of a run after which its GPU memory peak is logged (both Adam states exist)


class Trainer:
    """The loop of one experiment: `train()` runs `model` (a `UGATIT` built from `cfg`) through the data.

    In a data-parallel job every process builds its own Trainer; the constructor starts the process group and
    gives every process rank 0's initial weights.
    """

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.rank, self.world_size = _data_parallel()
        self.model = UGATIT(cfg, world_size=self.world_size)
        if self.world_size > 1:
            _broadcast_from_rank0(_network_tensors(self.model.nets))  # same start everywhere whatever each process drew
        self.interrupted: StopReason | None = None  # why the last `train()` stopped early, if it did

    @property
    def iteration(self) -> int:
        """Completed training iterations."""
        return self.model.iteration

    @classmethod
    def from_file(cls, path: str, overrides: Sequence[str] = ()) -> "Trainer":
        return cls(load_config(path, overrides))

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "Trainer":
        return cls(config_from_dict(values))

    def save_checkpoint(self) -> Path:
        """Write a checkpoint of the current iteration (rank 0 only: every process holds the same state)
        and prune old ones; returns its path on every rank."""
        path = checkpoint.checkpoint_path(self.cfg.output_dir, self.iteration)
        if self.rank == 0:
            checkpoint.save(self.model.state(), path)
            checkpoint.prune(self.cfg.output_dir, self.cfg.train.keep_checkpoints)
        return path

    def resume(self, resume: str | bool) -> None:
        """Load the latest checkpoint in `output_dir` (`resume=True`) or the file `resume` (weights-only files
        load the networks and start at iteration 0)."""
        out = Path(self.cfg.output_dir)
        path = checkpoint.latest_checkpoint(out) if resume is True else Path(resume)
        if self.world_size > 1:
            path = _from_rank0(path)
        if path is None:
            self._say(f"no checkpoint in {out / checkpoint.CHECKPOINT_DIR}; starting from scratch")
            return
        if self.world_size == 1:
            self.model.load_state(checkpoint.load(path), str(path))
        else:
            self._resume_from_rank0(path)
        self._say(f"resumed from {path} at iteration {self.iteration}")

    def _resume_from_rank0(self, path: Path) -> None:
        """Rank 0 reads the checkpoint at `path`; the other processes receive its tensors straight into theirs:
        the networks' weights and the optimisers' accumulators (created beforehand as the first step would,
        `UGATIT.load_state`), one collective per tensor, and the small rest (schedule, iteration) as one object.
        A process other than rank 0 so never reads the file nor holds any of its tensors in host memory. A bad
        file raises the same CheckpointError in every process."""
        payload, error = None, None
        if self.rank == 0:
            try:
                payload = checkpoint.load(path)
                self.model.load_state(payload, str(path))
            except checkpoint.CheckpointError as e:
                error = str(e)
        error = _from_rank0(error)
        if error is not None:
            raise checkpoint.CheckpointError(error)
        rest = None
        if payload is not None:
            rest = {k: v for k, v in payload.items() if k not in ("networks", "optimizers")}
            if "optimizers" in payload:  # the accumulators follow in place; `{}` makes load_state create them
                rest["optimizers"] = {name: {} for name in payload["optimizers"]}
        del payload
        rest = _from_rank0(rest)
        if self.rank != 0:
            self.model.load_state(rest, str(path), networks=False)
        _broadcast_from_rank0(_network_tensors(self.model.nets))
        if "optimizers" in rest:
            _broadcast_from_rank0(self.model.optimizer_tensors())

    def train(self, resume: str | bool = False, stop_after: int | None = None,
              should_stop: Callable[[int], bool] | None = None, progress: ProgressReporter | None = None) -> Path:
        """Train until `train.iterations` (or `stop_after`) and return the path of the final checkpoint.

        `resume`: see `resume()`. `should_stop(completed_iterations)` is asked before every iteration; True ends
        training there, with a sample sheet and a checkpoint (`interrupted` becomes `StopReason.SHOULD_STOP`). In a
        data-parallel job it is asked during each iteration instead, at its G step, with the count that iteration
        completes (the vote travels in the G loss's all-reduce; see the module docstring). `progress`
        receives every iteration's loss terms (default: `progress.make_progress`).

        Rank 0 holds the lock of `output_dir` meanwhile (`RunLockedError` if another live run holds it: in a
        data-parallel job every process raises it at once). In a data-parallel job every process runs this;
        rank 0 alone reads the checkpoint and sends it to the others (any number of processes may resume it),
        each process reads its own share of each batch; rank 0 alone prints and writes."""
        with contextlib.ExitStack() as stack:
            refused: RunLockedError | None = None
            if self.rank == 0:
                try:
                    lock = stack.enter_context(run_lock(self.cfg.output_dir))
                except RunLockedError as e:
                    refused = e
                else:
                    if lock.stale is not None:
                        self._say(f"note: took over the lock of {lock.stale.describe()}, which is no longer running")
            if self.world_size > 1:  # the other processes learn rank 0's answer instead of waiting for it
                sent = _from_rank0(None if refused is None else (refused.output_dir, refused.holder))
                refused = None if sent is None else RunLockedError(*sent)
            if refused is not None:
                raise refused
            return self._train(resume, stop_after, should_stop, progress)

    def _train(self, resume: str | bool, stop_after: int | None, should_stop: Callable[[int], bool] | None,
               progress: ProgressReporter | None) -> Path:
        cfg, t = self.cfg, self.cfg.train
        out = Path(cfg.output_dir)
        main = self.rank == 0
        if resume:
            self.resume(resume)
        end = t.iterations if stop_after is None else min(stop_after, t.iterations)
        folders = check_layout(resolve_data_root(cfg.data.root, cfg.data.cache_dir, log=self._say))
        if main:
            out.mkdir(parents=True, exist_ok=True)
            save_config(cfg, out / "config.yaml")
        self._say(format_config(cfg))
        if self.world_size > 1:
            self._say(f"data parallel: {self.world_size} processes x batch {t.batch_size} = global batch "
                      f"{self.world_size * t.batch_size}")

        loaders = [build_train_loader(folders[f"train{d}"], cfg.model.img_size, t.batch_size, t.seed, domain_id=i,
                                      start_iteration=self.iteration, num_workers=cfg.data.num_workers,
                                      use_shared_memory=cfg.data.use_shared_memory, rank=self.rank,
                                      world_size=self.world_size, strict=cfg.data.strict, stop_iteration=end)
                   for i, d in enumerate("AB")]
        samples = self._sample_images(folders) if main else {}
        writer = _visualdl_writer(out / "vdl") if main else None
        report = progress or make_progress(self.iteration, end, t.log_every, enabled=main)
        signals = _StopRequest()
        self.interrupted = None
        last_saved = last_sampled = None
        first = self.iteration
        self.model.set_train_mode(True)
        voted: list[StopReason | None] = [None]  # this process's last stop vote (data parallel)

        def vote() -> bool:
            """Data parallel: this process's vote, asked at the step's G all-reduce, to stop after the step."""
            voted[0] = self._local_stop_reason(signals, should_stop, self.iteration + 1)
            return voted[0] is not None

        try:
            with signals:
                if not self._stop_requested(signals, should_stop, before_first=True):
                    for real_A, real_B in zip(*loaders):
                        start = time.perf_counter()
                        terms = self.model.step(real_A, real_B, vote if self.world_size > 1 else None)
                        seconds = time.perf_counter() - start
                        it = self.iteration
                        report.update(it, terms)
                        if it == first + PEAK_MEMORY_AFTER or (it == end and it < first + PEAK_MEMORY_AFTER):
                            self._log_peak_gpu_memory(writer, it - first)
                        if writer is not None and (it % t.log_every == 0 or it == end):
                            self._log_scalars(writer, terms, it, seconds)
                        if main and (it % t.sample_every == 0 or it == end):
                            self._write_samples(samples, out, writer)
                            last_sampled = it
                        if main and t.save_generators_every and it % t.save_generators_every == 0:
                            checkpoint.save_generators(checkpoint.generators_path(out, it), cfg.model,
                                                       self.model.nets, iteration=it)
                            checkpoint.prune(out, t.keep_checkpoints, checkpoint.GENERATORS_DIR)
                        if it % t.save_every == 0:
                            last_saved = self.save_checkpoint()
                        if self.world_size > 1:
                            if self.model.stop_agreed:  # voted on in the step's G all-reduce
                                self._stopping(voted[0] or signals.requested)
                                break
                        elif self._stop_requested(signals, should_stop):
                            break
            if main and self.interrupted is StopReason.SHOULD_STOP and last_sampled != self.iteration:
                self._write_samples(samples, out, writer)  # the sheets a run ends with, as at its last iteration
        finally:
            report.close()
            if writer is not None:
                writer.close()
        if not main:
            last_saved = checkpoint.checkpoint_path(out, self.iteration)
        elif last_saved is None or checkpoint.list_checkpoints(out)[-1][0] != self.iteration:
            last_saved = self.save_checkpoint()
        self._say(f"checkpoint: {last_saved}")
        return last_saved

    def _stop_requested(self, signals: _StopRequest, should_stop: Callable[[int], bool] | None,
                        before_first: bool = False) -> bool:
        """Whether to stop now (a signal, or `should_stop`), agreed by all processes; sets `interrupted`.
        Signals are only checked after an iteration: before the first there is nothing to save."""
        if before_first:
            reason = StopReason.SHOULD_STOP if should_stop is not None and should_stop(self.iteration) else None
        else:
            reason = self._local_stop_reason(signals, should_stop, self.iteration)
        if not self._any_process(reason is not None):
            return False
        self._stopping(reason)
        return True

    @staticmethod
    def _local_stop_reason(signals: _StopRequest, should_stop: Callable[[int], bool] | None,
                           completed: int) -> StopReason | None:
        """Why this process wants to stop once `completed` iterations are done (a signal, then `should_stop`), or
        None."""
        if signals.requested is not None:
            return signals.requested
        return StopReason.SHOULD_STOP if should_stop is not None and should_stop(completed) else None

    def _stopping(self, reason: StopReason | None) -> None:
        """Training stops after this iteration: this process's `reason` (None: another process asked)."""
        self.interrupted = reason or StopReason.SIGTERM  # stopped by another process
        if self.rank == 0:
            cause = "should_stop() is true" if reason is StopReason.SHOULD_STOP else f"{self.interrupted} received"
            print(f"\n{cause}: saving a checkpoint at iteration {self.iteration}", file=sys.stderr)

    def _any_process(self, flag: bool) -> bool:
        """True if `flag` is true in any data-parallel process (`flag` itself in a single process)."""
        if self.world_size == 1:
            return flag
        value = paddle.to_tensor(int(flag), dtype="int32")
        paddle.distributed.all_reduce(value)
        return int(value) > 0

    def _say(self, text: str) -> None:
        if self.rank == 0:
            print(text)

    def _sample_images(self, folders: Mapping[str, Path]) -> dict[str, paddle.Tensor]:
        """The fixed sample-sheet images in the model's dtype: sampling never consumes training batches."""
        images = sample_images(folders, self.cfg.train.sample_count, self.cfg.model.img_size)
        return {d: paddle.to_tensor(batch).astype(self.model.dtype) for d, batch in images.items()}

    def _write_samples(self, samples: Mapping[str, paddle.Tensor], out: Path, writer: Any) -> None:
        sheets = sample_sheets(self.model.nets, samples)
        save_sample_sheets(sheets, out / "samples", self.iteration)
        if writer is not None:
            for direction, sheet in sheets.items():
                writer.add_image(f"samples/{direction}", sheet, self.iteration)

    def _log_peak_gpu_memory(self, writer: Any, iterations: int) -> None:
        """On a GPU: the allocator's peak so far, to the log and VisualDL (`train/peak_gpu_mib`), once per run."""
        kind, mib = peak_memory_mb()
        if kind != "gpu_allocated":
            return
        self._say(f"peak GPU memory after {iterations} iterations: {mib:.0f} MiB allocated "
                  f"(fits a {smallest_card_gb(mib) or 'no'} GB card; see tools/benchmark.py --memory)")
        if writer is not None:
            writer.add_scalar("train/peak_gpu_mib", mib, self.iteration)

    def _log_scalars(self, writer: Any, terms: Mapping[str, float], it: int, seconds: float) -> None:
        for key, value in terms.items():
            writer.add_scalar(f"loss/{key}", value, it)
        writer.add_scalar("train/lr", self.model.lr_schedule.last_lr, it)
        writer.add_scalar("train/sec_per_iter", seconds, it)
        for name in GENERATORS:
            for kind, cls in (("adailn", AdaILN), ("iln", ILN)):
                rho = [float(m.rho.mean()) for m in self.model.nets[name].sublayers() if isinstance(m, cls)]
                if rho:
                    writer.add_scalar(f"rho/{name}_{kind}_mean", float(np.mean(rho)), it)


def _data_parallel() -> tuple[int, int]:
    """(rank, world size) of this process, initialising Paddle's process group when started by
    `paddle.distributed.launch` with more than one process; (0, 1) otherwise."""
    world_size = paddle.distributed.get_world_size()
    if world_size > 1 and not paddle.distributed.is_initialized():
        paddle.distributed.init_parallel_env()  # gloo on CPU (set by the launcher), NCCL on GPUs
    return paddle.distributed.get_rank(), world_size


def _from_rank0(value: Any) -> Any:
    """Rank 0's `value` (a small picklable object) in every process."""
    values = [value]
    paddle.distributed.broadcast_object_list(values, src=0)
    return values[0]


def _network_tensors(nets: Mapping[str, paddle.nn.Layer]) -> list[paddle.Tensor]:
    """The parameters and buffers (spectral-norm u/v) of `nets`, in the same order in every process."""
    return [tensor for net in nets.values() for tensor in net.state_dict().values()]


def _broadcast_from_rank0(tensors: Sequence[paddle.Tensor]) -> None:
    """Copy rank 0's `tensors` into every process's, in place: one collective per tensor, except the one-element
    ones (Adam's beta powers, which live on the host even on a GPU, out of NCCL's reach), which go together as one
    object. The same `tensors` (count, order, shapes) in every process."""
    scalars = [t for t in tensors if int(t.size) == 1]
    values = _from_rank0([t.numpy() for t in scalars] if paddle.distributed.get_rank() == 0 else None)
    with paddle.no_grad():
        for tensor in tensors:
            if int(tensor.size) != 1:
                paddle.distributed.broadcast(tensor, src=0)
        if paddle.distributed.get_rank() != 0:
            for tensor, value in zip(scalars, values):
                tensor.set_value(value)


class _StopRequest:
    """Within `with`, SIGINT/SIGTERM set `requested` instead of killing the process; a second signal interrupts
    at once."""

    def __init__(self) -> None:
        self.requested: StopReason | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        self.requested = StopReason(signal.Signals(signum).name)
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


def _visualdl_writer(logdir: Path) -> Any:
    try:
        from visualdl import LogWriter
    except ImportError:  # VisualDL is optional at run time
        return None
    return LogWriter(logdir=str(logdir))
