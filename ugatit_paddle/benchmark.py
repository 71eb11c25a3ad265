"""Speed and memory of one configuration on synthetic inputs (no dataset needed).

`run_benchmark(cfg)` measures, after warm-up:

- seconds per training iteration with `train.reuse_fakes` on and off, interleaved iteration by
  iteration on the same networks (same kernels, same machine load), and the speed-up of on: the median of
  off/on over the pairs of neighbouring iterations ("off" is the official iteration: fakes recomputed for
  the G step, D backward through the generators);
- generator inference latency per image (batch 1, eval mode, no autograd) in eager mode, through
  an exported model (`paddle.jit.save` + Paddle Inference, `ugatit_paddle.inference.export`) with and without oneDNN,
  and through ONNX Runtime (`ugatit_paddle.inference.onnx`, when paddle2onnx and onnxruntime are installed);
- peak memory of training with the configured `train.reuse_fakes`: the process's peak resident set size
  on CPU (`resource.getrusage`), the allocator's peak on GPU; read after the warm-up iterations of that
  setting alone, before anything else runs.

Seconds are medians over the timed iterations: the median resists the odd slow iteration of a shared machine.

`measure_memory(cfg)` is the memory figure alone, for a fresh process: the peak of two training iterations with
the configured settings (`train.recompute` included), what the weights and Adam state take, and the smallest
common card that peak fits (`training/memory.py`).

`official_iteration_flops(cfg.model)` counts the floating-point operations of one official training iteration from
the networks' layer shapes, and `matmul_peak_gflops()` measures the machine's peak on one large matrix product with
the same threads: `run_benchmark` reports the step's GFLOP/s and their share of that peak.

`profile_training(cfg)` prints where a training iteration's time goes: `paddle.profiler`'s operator summary
(forward ops and their gradient nodes by total CPU time) over a few iterations.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import paddle

from .config import Config, ModelConfig
from .inference.export import InferenceModel, export_generator
from .inference.onnx import OnnxModel, OnnxUnavailableError, export_onnx
from .training.memory import CARD_SIZES_GB, peak_memory_mb, smallest_card_gb, weights_and_adam_mib
from .models import onednn, variant_of
from .models.generator import N_DOWNSAMPLING
from .models.variant import stride1_padding
from .training.ugatit import UGATIT

TIMED_ITERATIONS = 5  # per measured setting
WARMUP_ITERATIONS = 2  # untimed, before the timed ones


def synthetic_images(batch: int, img_size: int, seed: int) -> paddle.Tensor:
    """A float32 batch [batch, 3, img_size, img_size] uniform in [-1, 1]."""
    rng = np.random.default_rng(seed)
    return paddle.to_tensor(rng.uniform(-1.0, 1.0, (batch, 3, img_size, img_size)).astype(np.float32))


def _synchronize() -> None:
    if paddle.device.get_device().startswith("gpu"):
        paddle.device.cuda.synchronize()


def _seconds(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    _synchronize()
    return time.perf_counter() - start


def time_training(model: UGATIT, real_A: paddle.Tensor, real_B: paddle.Tensor, iters: int,
                  warmup: int) -> tuple[dict[str, list[float]], tuple[str, float]]:
    """Seconds of each timed `model.step`, keyed "on"/"off" for `train.reuse_fakes` (alternating the two after
    `warmup` iterations of each), and the peak memory after the warm-up of the configured setting."""
    settings = model.cfg.train
    original = settings.reuse_fakes
    configured, other = ("on", "off") if original else ("off", "on")
    times: dict[str, list[float]] = {"on": [], "off": []}
    model.set_train_mode(True)
    try:
        for key in (configured, other):
            settings.reuse_fakes = key == "on"
            for _ in range(max(1, warmup)):
                model.step(real_A, real_B)
            if key == configured:
                memory = peak_memory_mb()
        for i in range(iters):
            for key in ("on", "off") if i % 2 == 0 else ("off", "on"):
                settings.reuse_fakes = key == "on"
                times[key].append(_seconds(lambda: model.step(real_A, real_B)))
    finally:
        settings.reuse_fakes = original
    return times, memory


def paired_ratio(slower: list[float], faster: list[float]) -> float:
    """Median of slower[i] / faster[i]: each pair was timed back to back, so that a slow spell of the machine
    affects both sides of a pair alike."""
    return statistics.median(s / f for s, f in zip(slower, faster))


def time_eager_inference(generator: paddle.nn.Layer, image: paddle.Tensor, iters: int, warmup: int) -> list[float]:
    """Seconds of each timed eval-mode, no-grad generator forward on `image`."""
    generator.eval()
    times = []
    with paddle.no_grad():
        for i in range(warmup + iters):
            seconds = _seconds(lambda: generator(image))
            if i >= warmup:
                times.append(seconds)
    return times


def time_exported_inference(generator: paddle.nn.Layer, img_size: int, image: np.ndarray, iters: int,
                            warmup: int) -> dict[str, float | str]:
    """Median seconds per image through Paddle Inference, plain ("exported") and on a CPU also with oneDNN
    ("exported_onednn"), and through ONNX Runtime ("exported_onnxruntime"; its CUDA provider when Paddle runs on a
    GPU and ONNX Runtime has it); on the device Paddle runs on. A value is the reason instead when that path is
    not available."""
    results: dict[str, float | str] = {}
    threads = int(os.environ.get("OMP_NUM_THREADS", "1"))  # as many as eager Paddle (Inference's default is 1)
    device = "gpu" if paddle.device.get_device().startswith("gpu") else "cpu"
    settings = (("exported", False),) if device == "gpu" else (("exported", False), ("exported_onednn", True))
    with tempfile.TemporaryDirectory() as folder, _native_stdout_silenced():
        export_generator(generator, img_size, folder, "A2B")
        for key, onednn in settings:
            try:
                model = InferenceModel(folder, mkldnn=onednn, threads=threads, device=device)
                times = [_seconds(lambda: model(image)) for _ in range(warmup + iters)][warmup:]
                results[key] = statistics.median(times)
            except Exception as e:  # report, do not abort the benchmark (e.g. an op oneDNN cannot run)
                results[key] = f"failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}"
        results["exported_onnxruntime"] = _time_onnxruntime(generator, img_size, image, iters, warmup, threads,
                                                            os.path.join(folder, "model.onnx"), device)
    return results


def _time_onnxruntime(generator: paddle.nn.Layer, img_size: int, image: np.ndarray, iters: int, warmup: int,
                      threads: int, path: str, device: str = "cpu") -> float | str:
    """Median seconds per image of the generator exported to ONNX and run by ONNX Runtime (`threads` intra-op
    threads), or why not."""
    try:
        model = OnnxModel(export_onnx(generator, img_size, path, "A2B"), threads=threads,
                          device=None if device == "gpu" else "cpu")  # the CUDA provider where there is one
        return statistics.median([_seconds(lambda: model(image)) for _ in range(warmup + iters)][warmup:])
    except OnnxUnavailableError as e:
        return f"unavailable: {e}"
    except Exception as e:  # report, do not abort the benchmark
        return f"failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}"


@contextlib.contextmanager
def _native_stdout_silenced() -> Iterator[None]:
    """Discard what native code prints on file descriptor 1 meanwhile (Paddle 3.3's oneDNN passes print debug
    lines such as "ReduceMeanCheckIfOneDNNSupport"), so that standard output keeps only the report."""
    sys.stdout.flush()
    try:
        saved = os.dup(1)
    except OSError:  # no real file descriptor 1 (some notebook front ends): leave it alone
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def cpu_convolutions() -> str:
    """Who computes float32 convolutions on the CPU: "oneDNN x.y.z" (`models/onednn.py`) or "Paddle"."""
    return "oneDNN {}.{}.{}".format(*onednn.version()) if onednn.available() else "Paddle"


def run_benchmark(cfg: Config, iters: int = TIMED_ITERATIONS, warmup: int = WARMUP_ITERATIONS,
                  exported: bool = True) -> dict[str, Any]:
    """Measure `cfg`'s model (see the module docstring); returns a flat dict of figures."""
    t = cfg.train
    model = UGATIT(cfg)
    real_A = synthetic_images(t.batch_size, cfg.model.img_size, seed=1)
    real_B = synthetic_images(t.batch_size, cfg.model.img_size, seed=2)
    times, (memory_kind, memory_mb) = time_training(model, real_A, real_B, iters, warmup)
    on, off = statistics.median(times["on"]), statistics.median(times["off"])
    train = on if t.reuse_fakes else off

    flops = official_iteration_flops(cfg.model, t.batch_size)
    peak = matmul_peak_gflops()
    generator = model.nets["genA2B"]
    one = real_A[:1]
    result: dict[str, Any] = {
        "device": paddle.device.get_device(),
        "paddle": paddle.__version__,
        "cpu_convolutions": cpu_convolutions(),
        "model": dataclasses.asdict(cfg.model),
        "batch_size": t.batch_size,
        "reuse_fakes": t.reuse_fakes,
        "iters": iters,
        "warmup": warmup,
        "train_sec_per_iter": train,
        "train_images_per_sec": 2 * t.batch_size / train,  # A and B images consumed per second
        "train_sec_per_iter_reuse_on": on,
        "train_sec_per_iter_reuse_off": off,
        "reuse_fakes_speedup": paired_ratio(times["off"], times["on"]),
        "official_iteration_gflop": flops / 1e9,
        "train_gflops_per_sec": flops / 1e9 / train,  # the official iteration's work per second of ours
        "matmul_peak_gflops": peak,
        "train_share_of_peak": flops / 1e9 / train / peak,
        "infer_sec_per_image": statistics.median(time_eager_inference(generator, one, iters, warmup)),
        "peak_memory_kind": memory_kind,
        "peak_rss_mb" if memory_kind == "cpu_rss" else "peak_gpu_mb": memory_mb,
    }
    if exported:
        for key, value in time_exported_inference(generator, cfg.model.img_size, one.numpy(), iters, warmup).items():
            result[f"infer_{key}_sec_per_image"] = value
    return result


MEMORY_ITERATIONS = 2  # the second iteration is the first with both optimisers' Adam state in place


def measure_memory(cfg: Config, iters: int = MEMORY_ITERATIONS) -> dict[str, Any]:
    """Peak memory of `iters` training iterations with `cfg`'s settings as they are (`train.recompute`,
    `reuse_fakes`, `amp`), nothing else run in this process before: on a CPU call it in a fresh process, the
    resident peak never goes down. Also the seconds per iteration (median of those after the first, which
    creates the optimiser state), what the weights and Adam state take alone, and the smallest card it fits."""
    t = cfg.train
    model = UGATIT(cfg)
    real_A = synthetic_images(t.batch_size, cfg.model.img_size, seed=1)
    real_B = synthetic_images(t.batch_size, cfg.model.img_size, seed=2)
    model.set_train_mode(True)
    seconds = [_seconds(lambda: model.step(real_A, real_B)) for _ in range(iters)]
    kind, peak = peak_memory_mb()
    return {
        "device": paddle.device.get_device(),
        "paddle": paddle.__version__,
        "cpu_convolutions": cpu_convolutions(),
        "model": dataclasses.asdict(cfg.model),
        "batch_size": t.batch_size,
        "recompute": t.recompute,
        "reuse_fakes": t.reuse_fakes,
        "amp": t.amp,
        "iters": iters,
        "train_sec_per_iter": statistics.median(seconds[1:] or seconds),
        "peak_memory_kind": kind,
        "peak_memory_mb": peak,
        "weights_and_adam_mb": weights_and_adam_mib(model.nets),
        "fits_card_gb": smallest_card_gb(peak),
    }


MEMORY_TABLE_HEADER = ("| model | recompute | peak memory | weights + Adam alone | fits a card of | s/iteration |\n"
                       "|---|---|---|---|---|---|")


def format_memory_row(result: dict[str, Any]) -> str:
    """A `measure_memory` result as a row under `MEMORY_TABLE_HEADER`."""
    m = result["model"]
    where = "resident, CPU" if result["peak_memory_kind"] == "cpu_rss" else "allocated, GPU"
    card = f"{result['fits_card_gb']} GB" if result["fits_card_gb"] else f"none of {CARD_SIZES_GB[-1]} GB or less"
    return (f"| {'light' if m['light'] else 'full'}, {m['img_size']} px, ch {m['ch']}, batch {result['batch_size']} "
            f"| {'on' if result['recompute'] else 'off'} | {result['peak_memory_mb']:.0f} MiB ({where}) "
            f"| {result['weights_and_adam_mb']:.0f} MiB | {card} | {result['train_sec_per_iter']:.2f} |")


# ------------------------------------------------------------------ FLOP count of the official iteration
def conv_flops(k: int, c_in: int, c_out: int, out_h: int, out_w: int) -> int:
    """Multiply-adds of a k x k convolution, counted as 2 FLOPs each: 2 * k * k * C_in * C_out * out_h * out_w
    (per image; bias, padding and everything elementwise ignored)."""
    return 2 * k * k * c_in * c_out * out_h * out_w


def linear_flops(n_in: int, n_out: int) -> int:
    """2 * in * out FLOPs of a linear layer on one sample (bias ignored)."""
    return 2 * n_in * n_out


def generator_flops(m: ModelConfig) -> int:
    """Forward FLOPs of one generator on one [3, S, S] image (S = `m.img_size`, c = `m.ch`, d = 4c, s = S/4):

    - encoder: conv7x7 3->c at S x S; conv3x3 stride 2 c->2c at S/2 and 2c->4c at s; `n_res` residual blocks of
      two conv3x3 d->d at s;
    - CAM: two linears d->1 (on the pooled features) and a conv1x1 2d->d at s;
    - MLP: light: linear d->d, otherwise linear (s*s*d)->d (the full model's 268M-weight `FC.0` at 256 px, ch 64);
      then linear d->d and the gamma and beta linears d->d;
    - decoder: `n_res` AdaILN blocks of two conv3x3 d->d at s; conv3x3 d->d/2 at S/2 and d/2->c at S (after each
      2x up-sampling); conv7x7 c->3 at S.
    """
    c, size, d = m.ch, m.img_size, m.ch * 2**N_DOWNSAMPLING
    s = size // 2**N_DOWNSAMPLING
    flops = conv_flops(7, 3, c, size, size)
    for i in range(N_DOWNSAMPLING):  # stride-2 down-sampling: c*2^i -> c*2^(i+1) channels at S / 2^(i+1)
        side = size // 2 ** (i + 1)
        flops += conv_flops(3, c * 2**i, c * 2 ** (i + 1), side, side)
    residual = 2 * conv_flops(3, d, d, s, s)  # one ResnetBlock or ResnetAdaILNBlock
    flops += m.n_res * residual  # encoder
    flops += 2 * linear_flops(d, 1) + conv_flops(1, 2 * d, d, s, s)  # CAM
    flops += linear_flops(d if m.light else s * s * d, d) + 3 * linear_flops(d, d)  # FC.0, FC.2, gamma, beta
    flops += m.n_res * residual  # AdaILN blocks
    for i in range(N_DOWNSAMPLING):  # up-sampling: d / 2^i -> d / 2^(i+1) channels at S / 2^(N-1-i)
        side = size // 2 ** (N_DOWNSAMPLING - 1 - i)
        flops += conv_flops(3, d // 2**i, d // 2 ** (i + 1), side, side)
    return flops + conv_flops(7, c, 3, size, size)


def discriminator_flops(m: ModelConfig, n_layers: int) -> int:
    """Forward FLOPs of one discriminator of `n_layers` layers on one [3, S, S] image (c = `m.ch`):

    - `n_layers - 2` conv4x4 stride 2 after 1-pixel reflection padding, 3->c then doubling the channels, each
      halving the side (S -> S/2 -> ...); then one conv4x4 stride 1, channels doubled to d = c * 2^(n_layers-2)
      (side - 1 officially; the TF variant pads to keep the side);
    - CAM: two linears d->1 and a conv1x1 2d->d at that side;
    - the logits: conv4x4 stride 1 d->1 (side - 1 again officially).
    """
    c_out, side = m.ch, m.img_size
    before, after = stride1_padding(variant_of(m))[2:]
    c_in, flops = 3, 0
    for _ in range(n_layers - 2):
        side = (side + 2 - 4) // 2 + 1
        flops += conv_flops(4, c_in, c_out, side, side)
        c_in, c_out = c_out, 2 * c_out
    side = side + before + after - 4 + 1
    flops += conv_flops(4, c_in, c_out, side, side)
    d = c_out
    flops += 2 * linear_flops(d, 1) + conv_flops(1, 2 * d, d, side, side)
    side = side + before + after - 4 + 1
    return flops + conv_flops(4, d, 1, side, side)


BACKWARD_FACTOR = 2  # a backward costs about twice its forward: the input gradient and the weight gradient


def official_iteration_flops(m: ModelConfig, batch_size: int = 1) -> int:
    """FLOPs of one iteration of the official training code (`UGATIT.train`, `parity/official_torch.py`) on
    batches [`batch_size`, 3, S, S], from the forward FLOPs of each network (G = `generator_flops`, DG and DL =
    `discriminator_flops` of a global and a local discriminator):

    - D step: 2 G (A2B, B2A translations), each of the 4 discriminators on a real and a fake batch (4 DG + 4 DL);
      its backward runs through all of it (the fakes are not detached);
    - G step: 6 G (the translations again, 2 cycles, 2 identities), the 4 discriminators on the fakes
      (2 DG + 2 DL); its backward runs through all of it (also the discriminators' weights, whose gradients the
      official code computes and discards);
    - backward = `BACKWARD_FACTOR` x forward, so the iteration is (1 + 2) x (8 G + 6 DG + 6 DL) per image.

    Elementwise work (normalisations, activations, losses, Adam) is not counted. With `train.reuse_fakes` this
    project skips part of that work (2 G forwards, the D backward through the generators, the discriminators'
    weight gradients in the G step), so FLOPs / seconds is the rate of the official iteration's work.
    """
    forward = (8 * generator_flops(m) + 6 * discriminator_flops(m, m.global_layers)
               + 6 * discriminator_flops(m, m.local_layers))
    return (1 + BACKWARD_FACTOR) * forward * batch_size


MATMUL_SIZE = 2048
MATMUL_REPEATS = 5


def matmul_peak_gflops(size: int = MATMUL_SIZE, repeats: int = MATMUL_REPEATS) -> float:
    """The machine's practical peak: GFLOP/s of one [size, size] x [size, size] float32 matrix product
    (2 * size^3 FLOPs) on Paddle's current device and threads, the median of `repeats` after one warm-up."""
    rng = np.random.default_rng(0)
    a, b = (paddle.to_tensor(rng.standard_normal((size, size)).astype(np.float32)) for _ in range(2))
    paddle.matmul(a, b)
    seconds = statistics.median(_seconds(lambda: paddle.matmul(a, b))
                                for _ in range(repeats))
    return 2 * size**3 / seconds / 1e9


def profile_training(cfg: Config, iters: int = 3, warmup: int = 1) -> None:
    """Print `paddle.profiler`'s summary of `iters` training iterations (after `warmup`) with `cfg`'s settings;
    its "Operator Summary" lists each forward op and gradient node by total time."""
    import paddle.profiler as profiler  # optional part of Paddle, loaded only when profiling

    model = UGATIT(cfg)
    real_A = synthetic_images(cfg.train.batch_size, cfg.model.img_size, seed=1)
    real_B = synthetic_images(cfg.train.batch_size, cfg.model.img_size, seed=2)
    model.set_train_mode(True)
    for _ in range(warmup):
        model.step(real_A, real_B)
    targets = [profiler.ProfilerTarget.CPU]
    if paddle.device.get_device().startswith("gpu"):
        targets.append(profiler.ProfilerTarget.GPU)
    prof = profiler.Profiler(targets=targets)
    prof.start()
    for _ in range(iters):
        model.step(real_A, real_B)
        _synchronize()
        prof.step()
    prof.stop()
    prof.summary(sorted_by=profiler.SortedKeys.CPUTotal, op_detail=False, thread_sep=False, time_unit="ms")


def format_markdown(result: dict[str, Any], command: str | None = None) -> str:
    """A `run_benchmark` result as a Markdown table (for the README), under a line naming the setting and, if
    given, the `command` that reproduces it."""
    m = result["model"]
    images = 2 * result["batch_size"]  # A and B images per iteration
    configured = "on" if result["reuse_fakes"] else "off"
    lines = [f"{'Light' if m['light'] else 'Full'} model, img {m['img_size']}, ch {m['ch']}, n_res {m['n_res']}, "
             f"batch {result['batch_size']} on {result['device']} (Paddle {result['paddle']}, CPU convolutions by "
             f"{result['cpu_convolutions']}); medians of "
             f"{result['iters']} iterations after {result['warmup']} warm-up"
             + (f" (`{command}`)" if command else "") + ":", "", "| measure | value |", "|---|---|"]
    for setting in ("on", "off"):
        seconds = result[f"train_sec_per_iter_reuse_{setting}"]
        note = " (configured)" if setting == configured else ""
        lines.append(f"| training, reuse_fakes {setting}{note} | {seconds:.3f} s/iteration, "
                     f"{images / seconds:.2f} images/s |")
    lines.append(f"| reuse_fakes speed-up (median of paired off/on) | {result['reuse_fakes_speedup']:.2f}x |")
    lines.append(f"| training, official iteration's FLOPs per second ({result['official_iteration_gflop']:.1f} "
                 f"GFLOP/iteration) | {result['train_gflops_per_sec']:.1f} GFLOP/s, "
                 f"{100 * result['train_share_of_peak']:.0f}% of the matmul peak |")
    lines.append(f"| matmul peak ({MATMUL_SIZE}x{MATMUL_SIZE} float32, same threads) | "
                 f"{result['matmul_peak_gflops']:.1f} GFLOP/s |")
    lines.append(f"| generator inference, batch 1, eager | {result['infer_sec_per_image'] * 1000:.1f} ms/image |")
    for key, label in (("infer_exported_sec_per_image", "Paddle Inference"),
                       ("infer_exported_onednn_sec_per_image", "Paddle Inference + oneDNN"),
                       ("infer_exported_onnxruntime_sec_per_image", "ONNX Runtime")):
        if key in result:
            value = result[key]
            text = f"{value * 1000:.1f} ms/image" if isinstance(value, float) else value.replace("|", "/")
            lines.append(f"| generator inference, batch 1, {label} | {text} |")
    if "peak_rss_mb" in result:
        lines.append(f"| peak memory, training | {result['peak_rss_mb']:.0f} MiB resident (CPU, whole process) |")
    else:
        lines.append(f"| peak memory, training | {result['peak_gpu_mb']:.0f} MiB allocated on the GPU |")
    return "\n".join(lines)
