"""Speed and memory of this project beside the official PyTorch code (`tools/compare_official.py`).

* training speed: both implementations in one process on the same random images, iterations interleaved
  (official, ours with `reuse_fakes` on, ours with it off, ...; the order reversed every other round),
  medians after warm-up, and speed ratios as medians of each round's ratio (`benchmark.paired_ratio`);
* inference latency (generator, batch 1, eval mode, no autograd): official eager, ours eager, ours exported
  (Paddle Inference, plain and oneDNN), each run alone in a fresh process per round (in one process, one
  library's or executor's idle worker threads slow the next one down), medians over all rounds;
* memory: each implementation in its own fresh process, peak resident set size over a few iterations
  (Adam state included: the first iteration allocates it).

The official side is `official_torch.OfficialTraining`, the same iteration the parity checks run. The fresh
processes are the caller's command (`worker`) with `--only ...` / `--only-inference ...` appended.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import paddle

from ..benchmark import cpu_convolutions, paired_ratio, peak_memory_mb, synthetic_images
from ..config import config_from_dict
from ..inference.export import InferenceModel, export_generator
from ..models import Generator
from ..training.ugatit import UGATIT
from .official_torch import OfficialTraining

TRAINING_RUNS = ("official", "ours_reuse_on", "ours_reuse_off")
INFERENCE_RUNS = ("official_eager", "ours_eager", "ours_exported", "ours_exported_onednn")


@dataclass(frozen=True)
class Setup:
    """What is compared: the model, the batch, the timing schedule and the torch/Paddle threads."""

    torch_src: str
    img_size: int = 128
    ch: int = 32
    n_res: int = 4
    light: bool = True
    batch: int = 1
    iters: int = 5
    warmup: int = 2
    threads: int = 1

    def official(self) -> OfficialTraining:
        return OfficialTraining(self.torch_src, self.img_size, self.ch, self.n_res, self.light, threads=self.threads)


def interleaved_times(runs: dict[str, Callable[[], object]], warmup: int, iters: int) -> dict[str, list[float]]:
    """`warmup` untimed calls of each run, then `iters` timed rounds, the order reversed every other round."""
    for fn in runs.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in runs}
    order = list(runs)
    for i in range(iters):
        for key in order if i % 2 == 0 else order[::-1]:
            start = time.perf_counter()
            runs[key]()
            times[key].append(time.perf_counter() - start)
    return times


class OurIteration:
    """This project's step (`UGATIT`) on synthetic images; `step(reuse_fakes)` runs one iteration."""

    def __init__(self, s: Setup) -> None:
        cfg = config_from_dict({"model": {"img_size": s.img_size, "ch": s.ch, "n_res": s.n_res, "light": s.light},
                                "train": {"batch_size": s.batch}})
        self.model = UGATIT(cfg)
        self.model.set_train_mode(True)
        self.real_A = synthetic_images(s.batch, s.img_size, seed=1)
        self.real_B = synthetic_images(s.batch, s.img_size, seed=2)

    def step(self, reuse_fakes: bool = True) -> None:
        self.model.cfg.train.reuse_fakes = reuse_fakes
        self.model.step(self.real_A, self.real_B)


def _training_step(which: str, s: Setup) -> Callable[[], object]:
    """One training iteration of one of `TRAINING_RUNS`, ready to call."""
    if which == "official":
        official = s.official()
        real_A, real_B = official.images(s.batch, s.img_size, 1), official.images(s.batch, s.img_size, 2)
        return lambda: official.step(real_A, real_B)
    ours = OurIteration(s)
    return lambda: ours.step(which == "ours_reuse_on")


def compare_training_speed(s: Setup) -> dict[str, Any]:
    """Seconds per training iteration of `TRAINING_RUNS`, interleaved in this process, and the speed ratios."""
    times = interleaved_times({which: _training_step(which, s) for which in TRAINING_RUNS}, s.warmup, s.iters)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"threads": s.threads, "ours_cpu_convolutions": cpu_convolutions(),
            **{f"{k}_sec_per_iter": v for k, v in med.items()},
            "ours_speed_vs_official": paired_ratio(times["official"], times["ours_reuse_on"]),
            "ours_off_speed_vs_official": paired_ratio(times["official"], times["ours_reuse_off"]),
            "reuse_fakes_speedup": paired_ratio(times["ours_reuse_off"], times["ours_reuse_on"]),
            "all_times": times}


def inference_times(which: str, s: Setup) -> list[float]:
    """Seconds per generator forward (batch 1, eval mode, no autograd) of one of `INFERENCE_RUNS`, alone in this
    process: `s.warmup` untimed calls, then `s.iters` timed ones."""
    image = np.random.default_rng(0).uniform(-1, 1, (1, 3, s.img_size, s.img_size)).astype(np.float32)
    with contextlib.ExitStack() as stack:
        if which == "official_eager":
            official = s.official()
            torch, generator = official.torch, official.nets["genA2B"].eval()
            torch_image = torch.from_numpy(image)

            def run() -> None:
                with torch.no_grad():
                    generator(torch_image)
        else:
            ours = Generator(s.ch, s.n_res, s.img_size, s.light)
            ours.eval()
            if which == "ours_eager":
                paddle_image = paddle.to_tensor(image)

                def run() -> None:
                    with paddle.no_grad():
                        ours(paddle_image)
            else:
                folder = stack.enter_context(tempfile.TemporaryDirectory())
                export_generator(ours, s.img_size, folder, "A2B")
                model = InferenceModel(folder, mkldnn=which == "ours_exported_onednn", threads=s.threads)

                def run() -> None:
                    model(image)
        return interleaved_times({which: run}, s.warmup, s.iters)[which]


def _run_worker(worker: Sequence[str], *extra: str) -> Any:
    """Run the caller's command with `extra` appended in a fresh process; its last stdout line as JSON."""
    run = subprocess.run([*worker, *extra], capture_output=True, text=True)
    if run.returncode != 0:
        raise RuntimeError(f"{' '.join(extra)} failed (exit {run.returncode}): {run.stderr.strip()[-2000:]}")
    return json.loads(run.stdout.strip().splitlines()[-1])


def compare_inference(rounds: int, worker: Sequence[str]) -> dict[str, float]:
    """`rounds` rounds, each running every one of `INFERENCE_RUNS` in a fresh process (`worker` + `--only-inference
    WHICH`, which must print `inference_times` as JSON), the order reversed every other round; medians over all
    rounds and speed ratios to the official latency."""
    times: dict[str, list[float]] = {}
    for r in range(rounds):
        for which in INFERENCE_RUNS if r % 2 == 0 else INFERENCE_RUNS[::-1]:
            times.setdefault(which, []).extend(_run_worker(worker, "--only-inference", which))
    med = {k: statistics.median(v) for k, v in times.items()}
    return {**{f"{k}_sec_per_image": v for k, v in med.items()},
            **{f"{k}_speed_vs_official": med["official_eager"] / v for k, v in med.items() if k != "official_eager"}}


def memory_of(which: str, s: Setup) -> dict[str, Any]:
    """Peak RSS of `s.iters` training iterations of one of `TRAINING_RUNS`, in this (fresh) process."""

    step = _training_step(which, s)
    seconds = []
    for _ in range(s.iters):
        start = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - start)
    return {"impl": which, "peak_rss_mb": peak_memory_mb()[1], "sec_per_iter": seconds}


def compare_memory(worker: Sequence[str]) -> dict[str, Any]:
    """`memory_of` each of `TRAINING_RUNS` in a fresh process (`worker` + `--only WHICH`); a failure is reported
    in place of its figures."""
    result: dict[str, Any] = {}
    for which in TRAINING_RUNS:
        try:
            result[which] = _run_worker(worker, "--only", which)
        except RuntimeError as e:
            result[which] = str(e).splitlines()[-1]
    return result


def clone_has_networks(torch_src: str) -> bool:
    return (Path(torch_src).expanduser() / "networks.py").is_file()
