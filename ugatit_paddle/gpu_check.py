"""The GPU check (`tools/gpu_check.py`): each claim of the README's "Training on GPUs" that only a GPU can show,
measured and printed as one row of a Markdown table.

`ROWS` lists the row functions in order; each takes `Options` and returns its `Row`s. `run_rows` calls them so
that one that fails becomes a row with its error (one broken check never hides the others). The rows:

- `amp_rows`: AMP O1 against float32 from the same weights on the same batches: losses finite and close;
- `memory_rows`: peak GPU memory and speed of the README's memory table, recompute off and on (fresh processes);
- `spectral_norm_rows`: host copies (`Tensor.numpy` / `__array__` calls) in a train-mode discriminator forward,
  which updates the spectral-norm vectors (none expected, on Paddle 2.6 and 3.x), and its time;
- `fc0_rows`: peak GPU memory of a full-model iteration under AMP with `FC.0` in float32
  (`layers.linear_in_float32`) against `FC.0` left to autocast (fresh processes);
- `overflow_rows`: optimiser steps skipped in the first iterations under float16 AMP at the initial loss scale
  `amp.INIT_LOSS_SCALE` against Paddle's default 2^15;
- `bfloat16_rows`: `train.amp_dtype=bfloat16` runs with finite losses (or "not supported by this card");
- `deterministic_rows`: two runs with `train.deterministic` from the same weights end bit-equal; its cost;
- `reads_rows`: the step reading the device once per iteration against once per optimiser step: same losses, and
  the seconds per iteration of each (which one a GPU should use);
- `inference_rows`: Paddle Inference and ONNX Runtime (CUDA provider) on the device against the CPU;
- `host_memory_rows`: resident host memory after a checkpoint save (allocator settings off on a GPU);
- `nccl_rows`: a 2-process resume and the busy-folder stop through `paddle.distributed.launch` (2 GPUs).
- `resume_memory_rows`: each rank's host memory after a 2-process resume against a fresh start
  (`resume_memory.measure_resume_memory`, 2 GPUs): no rank other than 0 holds a host copy of the optimiser state.

`Options.device` is "gpu" in the tool; rows that can run without AMP also run with "cpu" (the tests), the
AMP rows then say they need a GPU. `Options.small` makes every model tiny (tests).
"""

from __future__ import annotations

import contextlib
import gc
import json
import math
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

AMP_TOLERANCE = 0.05  # relative difference of the first iterations' totals, float16 against float32
INFERENCE_TOLERANCE = 1e-3  # largest absolute difference of the device's outputs from the CPU's
PADDLE_DEFAULT_LOSS_SCALE = 2.0**15  # paddle.amp.GradScaler's default initial loss scale
MEMORY_CONFIGS = [(light, size) for light in (True, False) for size in (128, 256)]  # the README's memory table
PACKAGE_PARENT = Path(__file__).resolve().parents[1]  # the folder holding this ugatit_paddle (for child processes)


@dataclass
class Row:
    """One line of the table."""

    check: str
    setting: str
    result: str
    sec_per_iter: str = ""


@dataclass
class Options:
    iters: int = 2  # training iterations per memory configuration
    amp_iters: int = 3  # iterations of the AMP comparison
    check_iters: int = 4  # iterations of the deterministic, bfloat16 and timing checks
    overflow_iters: int = 20  # iterations of the loss-scale comparison
    device: str = "gpu"  # "cpu" only in tests: the rows that can run there do, the AMP rows skip
    small: bool = False  # tiny models (tests)


# ------------------------------------------------------------------------------------------------ helpers
def model_overrides(o: Options, light: bool = True, size: int = 256, ch: int = 64) -> list[str]:
    """Config overrides for a model of that kind (ch 8, 128 px, light, 1 residual block when `o.small`)."""
    if o.small:
        light, size, ch = True, 128, 8
    return [f"model.light={str(light).lower()}", f"model.img_size={size}", f"model.ch={ch}",
            *(["model.n_res=1"] if o.small else []), "train.batch_size=1"]


def image_size(overrides: Sequence[str]) -> int:
    """`model.img_size` of `model_overrides`."""
    return int(dict(x.split("=", 1) for x in overrides)["model.img_size"])


def describe(overrides: Sequence[str]) -> str:
    """'light, 256 px, ch 64' from `model_overrides`."""
    values = dict(x.split("=", 1) for x in overrides)
    return (f"{'light' if values['model.light'] == 'true' else 'full'}, {values['model.img_size']} px, "
            f"ch {values['model.ch']}")


def synchronize(device: str) -> None:
    """Wait for the GPU's queued work (nothing on the CPU)."""
    import paddle

    if device == "gpu":
        paddle.device.cuda.synchronize()


def build_model(overrides: Sequence[str], one_read: bool | None = None) -> Any:
    """`UGATIT` of the default config with `overrides` (and `one_read`, see `UGATIT`), in train mode."""
    from .config import load_config
    from .training.ugatit import UGATIT

    model = UGATIT(load_config(None, list(overrides)), one_read=one_read)
    model.set_train_mode(True)
    return model


def timed_steps(model: Any, size: int, iters: int, device: str) -> tuple[list[dict[str, float]], float]:
    """`iters` steps of `model` on fixed synthetic batches: (their loss terms, median seconds per step after
    the first, or the only one)."""
    from .benchmark import synthetic_images

    real_A, real_B = synthetic_images(1, size, seed=1), synthetic_images(1, size, seed=2)
    terms, times = [], []
    for _ in range(iters):
        start = time.perf_counter()
        terms.append(model.step(real_A, real_B))
        synchronize(device)
        times.append(time.perf_counter() - start)
    return terms, statistics.median(times[1:] or times)


def same_start(model: Any, start: dict[str, dict]) -> None:
    """Runs from the same weights: the first `model` given fills `start` (its networks' initial weights, by network
    name), the later ones are set to it."""
    if start:
        for name, net in model.nets.items():
            net.set_state_dict(start[name])
    else:
        start.update({n: {k: v.numpy() for k, v in net.state_dict().items()} for n, net in model.nets.items()})


def totals_difference(terms: Sequence[Mapping[str, float]], reference: Sequence[Mapping[str, float]]) -> float:
    """The largest relative difference of D/total and G/total between two runs' loss terms, iteration by iteration."""
    return max(abs(a[k] - b[k]) / max(abs(b[k]), 1e-12)
               for a, b in zip(terms, reference) for k in ("D/total", "G/total"))


def network_arrays(model: Any) -> dict[str, np.ndarray]:
    """Every weight and buffer of the six networks as numpy, keyed `net.name`."""
    return {f"{n}.{k}": v.numpy() for n, net in model.nets.items() for k, v in net.state_dict().items()}


@contextlib.contextmanager
def patched(module: ModuleType | type, name: str, value: Any) -> Iterator[None]:
    """`module.name = value` within the block."""
    original = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, original)


class HostCopies:
    """Counts `paddle.Tensor.numpy` and `__array__` calls (device-to-host copies on a GPU) within `with`."""

    def __init__(self) -> None:
        self.calls = 0

    def __enter__(self) -> "HostCopies":
        import paddle

        self.stack = contextlib.ExitStack()
        for name in ("numpy", "__array__"):
            self.stack.enter_context(patched(paddle.Tensor, name, self._counting(getattr(paddle.Tensor, name))))
        return self

    def __exit__(self, *exc: object) -> None:
        self.stack.close()

    def _counting(self, original: Callable) -> Callable:
        def wrapper(tensor, *args, **kwargs):
            self.calls += 1
            return original(tensor, *args, **kwargs)
        return wrapper


def needs_gpu(o: Options, check: str, setting: str) -> list[Row] | None:
    """The rows saying `check` needs a GPU (AMP) when `o.device` is not one, else None."""
    return None if o.device == "gpu" else [Row(check, setting, "skipped: needs a GPU (mixed precision)")]


def in_fresh_process(function: str, **kwargs: Any) -> dict:
    """`function(**kwargs)` of this module in a fresh Python process set up as the tools are (importing
    `ugatit_paddle.commands` applies the CPU and allocator settings), so that its peaks are its own; its JSON
    result, or RuntimeError with its last error line."""
    code = ("import json, sys; import ugatit_paddle.commands; from ugatit_paddle import gpu_check; "
            "print(json.dumps(getattr(gpu_check, sys.argv[1])(**json.loads(sys.argv[2]))))")
    path = os.pathsep.join(filter(None, [str(PACKAGE_PARENT), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, PYTHONPATH=path)
    run = subprocess.run([sys.executable, "-c", code, function, json.dumps(kwargs)], capture_output=True, text=True,
                         env=env, timeout=3600)
    if run.returncode != 0:
        lines = (run.stderr or run.stdout).strip().splitlines() or [f"exit status {run.returncode}"]
        raise RuntimeError(lines[-1][:300])
    return json.loads(run.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------------------- rows
def amp_rows(o: Options) -> list[Row]:
    """AMP O1 and float32 from the same initial weights on the same batches: losses finite and close."""
    overrides = model_overrides(o, light=True, size=128, ch=32)
    setting = f"{describe(overrides)}, batch 1, {o.amp_iters} iterations"
    skip = needs_gpu(o, "AMP O1 vs float32", setting)
    if skip:
        return skip
    terms: dict[bool, list[dict[str, float]]] = {}
    seconds: dict[bool, float] = {}
    for amp in (False, True):
        model = build_model([*overrides, f"train.amp={amp}"])
        terms[amp], seconds[amp] = timed_steps(model, image_size(overrides), o.amp_iters, o.device)
    finite = all(math.isfinite(v) for step in terms[True] for v in step.values())
    worst = totals_difference(terms[True], terms[False])
    verdict = "pass" if finite and worst <= AMP_TOLERANCE else "FAIL"
    result = (f"{verdict}: losses {'finite' if finite else 'NOT finite'}, D/total and G/total within "
              f"{worst:.1%} of float32 (limit {AMP_TOLERANCE:.0%})")
    return [Row("AMP O1 vs float32", setting, result,
                f"{seconds[True]:.3f} (AMP), {seconds[False]:.3f} (float32)")]


def memory_rows(o: Options, run_json: Callable[[list[str]], dict] | None = None) -> list[Row]:
    """Peak GPU memory and speed per `MEMORY_CONFIGS` entry, recompute off and on, each in a fresh process."""
    run_json = run_json or benchmark_json
    rows = []
    for light, size in MEMORY_CONFIGS:
        for recompute in (False, True):
            model = "light" if light else "full"
            setting = f"{model}, {size} px, ch 64, batch 1, recompute {'on' if recompute else 'off'}"
            overrides = [f"model.light={str(light).lower()}", f"model.img_size={size}", "model.ch=64",
                         "train.batch_size=1", f"train.recompute={str(recompute).lower()}"]
            try:
                args = [x for v in overrides for x in ("-o", v)]
                r = run_json(["--memory", "--json", "--iters", str(o.iters), *args])
            except RuntimeError as e:  # out of memory, typically: a result too
                rows.append(Row("peak GPU memory", setting, f"failed: {e}"))
                continue
            card = f"fits {r['fits_card_gb']} GB" if r["fits_card_gb"] else "fits no card of 80 GB or less"
            rows.append(Row("peak GPU memory", setting,
                            f"{r['peak_memory_mb']:.0f} MiB ({card}); weights + Adam alone "
                            f"{r['weights_and_adam_mb']:.0f} MiB", f"{r['train_sec_per_iter']:.3f}"))
    return rows


def benchmark_json(args: list[str]) -> dict:
    """tools/benchmark.py `args` in a fresh process; its JSON line, or RuntimeError with its last error line."""
    tool = PACKAGE_PARENT / "tools" / "benchmark.py"
    target = [str(tool)] if tool.is_file() else ["-m", "ugatit_paddle.commands.benchmark"]  # clone or installed
    run = subprocess.run([sys.executable, *target, *args], capture_output=True, text=True)
    if run.returncode != 0:
        lines = (run.stderr or run.stdout).strip().splitlines() or [f"exit status {run.returncode}"]
        raise RuntimeError(lines[-1][:300])
    return json.loads(run.stdout.strip().splitlines()[-1])


def spectral_norm_rows(o: Options) -> list[Row]:
    """Host copies made by a train-mode forward of a global and a local discriminator (each updates its
    spectral-norm vectors; Paddle 2.6's `set_value(tensor)` would copy through numpy), and its time."""
    import paddle

    from .benchmark import synthetic_images
    from .config import load_config
    from .models import build_networks

    overrides = model_overrides(o)
    m = load_config(None, overrides).model
    nets = build_networks(m, ("disGA", "disLA"))
    for net in nets.values():
        net.train()
    x = synthetic_images(1, m.img_size, seed=3)

    def forward() -> None:
        for net in nets.values():
            net(x)

    forward()
    synchronize(o.device)
    with HostCopies() as copies:
        forward()
    synchronize(o.device)
    times = []
    for _ in range(o.check_iters):
        start = time.perf_counter()
        forward()
        synchronize(o.device)
        times.append(time.perf_counter() - start)
    verdict = "pass" if copies.calls == 0 else "FAIL"
    return [Row("spectral-norm update", f"disGA + disLA train-mode forward, {describe(overrides)}, Paddle "
                f"{paddle.__version__}", f"{verdict}: {copies.calls} host copies (Tensor.numpy/__array__)",
                f"{statistics.median(times):.4f} s (the two forwards)")]


def fc0_autocast() -> contextlib.AbstractContextManager:
    """Within the block, generators compute `FC.0` as a plain call (autocast to float16 under AMP) instead of
    `layers.linear_in_float32`: the setting `fc0_rows` compares against."""
    from .models import generator

    return patched(generator, "linear_in_float32", lambda layer, x: layer(x))


def fc0_peak(float32_fc0: bool, small: bool = False) -> dict:
    """(In a fresh process: `fc0_rows`.) Peak GPU memory (MiB) and seconds of a second AMP iteration of the
    full model with `FC.0` in float32 (`layers.linear_in_float32`) or, `float32_fc0` False, left to autocast."""
    import paddle

    overrides = [*model_overrides(Options(small=small), light=False), "train.amp=true", "train.recompute=true"]
    with contextlib.nullcontext() if float32_fc0 else fc0_autocast():
        model = build_model(overrides)
        _, seconds = timed_steps(model, image_size(overrides), 2, "gpu")
    return {"peak_mib": paddle.device.cuda.max_memory_allocated() / 2**20, "seconds": seconds}


def fc0_rows(o: Options, run: Callable[..., dict] = in_fresh_process) -> list[Row]:
    """`FC.0` in float32 under AMP against left to autocast: peak GPU memory of a full-model iteration."""
    overrides = model_overrides(o, light=False)
    setting = f"{describe(overrides)}, batch 1, AMP float16, recompute on, peak of 2 iterations (the G step's)"
    skip = needs_gpu(o, "FC.0 in float32 under AMP", setting)
    if skip:
        return skip
    f32, plain = (run("fc0_peak", float32_fc0=flag, small=o.small) for flag in (True, False))
    saved = plain["peak_mib"] - f32["peak_mib"]
    return [Row("FC.0 in float32 under AMP", setting,
                f"{f32['peak_mib']:.0f} MiB with float32 FC.0, {plain['peak_mib']:.0f} MiB with it autocast: "
                f"{saved:.0f} MiB saved", f"{f32['seconds']:.3f} (float32 FC.0), {plain['seconds']:.3f} (autocast)")]


def overflow_rows(o: Options) -> list[Row]:
    """Optimiser steps (D and G) skipped by float16 overflow in the first `o.overflow_iters` iterations, at the
    initial loss scale `amp.INIT_LOSS_SCALE` and at Paddle's default 2^15."""
    from .training import amp

    overrides = model_overrides(o)
    n = o.overflow_iters
    setting = f"{describe(overrides)}, batch 1, float16, first {n} iterations ({2 * n} optimiser steps)"
    skip = needs_gpu(o, "AMP overflow at the start", setting)
    if skip:
        return skip
    results = []
    for scale in (amp.INIT_LOSS_SCALE, PADDLE_DEFAULT_LOSS_SCALE):
        with patched(amp, "INIT_LOSS_SCALE", scale):  # read when the model's AmpSteps are made
            model = build_model([*overrides, "train.amp=true", f"train.amp_max_skipped={2 * n + 1}"])
        timed_steps(model, image_size(overrides), n, o.device)
        results.append(f"{model.amp_skips.total} skipped at 2^{int(math.log2(scale))}")
    return [Row("AMP overflow at the start", setting, "; ".join(results))]


def bfloat16_rows(o: Options, supported: bool | None = None) -> list[Row]:
    """`train.amp_dtype=bfloat16` for `o.check_iters` iterations: losses finite; "not supported by this card"
    when Paddle says so (`supported` overrides the question: tests)."""
    import paddle

    overrides = model_overrides(o)
    setting = f"{describe(overrides)}, batch 1, {o.check_iters} iterations"
    skip = needs_gpu(o, "AMP bfloat16", setting)  # first: on a CPU, Paddle's answer is about the CPU
    if skip:
        return skip
    if supported is None:
        ask = getattr(paddle.amp, "is_bfloat16_supported", None)
        if ask is None:
            return [Row("AMP bfloat16", setting, "unknown: this Paddle has no paddle.amp.is_bfloat16_supported")]
        supported = bool(ask())
    if not supported:
        return [Row("AMP bfloat16", setting, "not supported by this card")]
    model = build_model([*overrides, "train.amp=true", "train.amp_dtype=bfloat16"])
    terms, seconds = timed_steps(model, image_size(overrides), o.check_iters, o.device)
    bad = sorted({k for step in terms for k, v in step.items() if not math.isfinite(v)})
    result = "pass: losses finite" if not bad else f"FAIL: not finite: {', '.join(bad)}"
    return [Row("AMP bfloat16", setting, f"{result}; {model.amp_skips.total} steps skipped", f"{seconds:.3f}")]


def deterministic_rows(o: Options) -> list[Row]:
    """Two `train.deterministic` runs of `o.check_iters` iterations from the same weights: bit-equal weights;
    seconds per iteration with and without deterministic mode."""
    overrides = model_overrides(o)
    size = image_size(overrides)
    start: dict[str, dict] = {}  # the first run's initial weights, for the others
    weights, seconds = [], {}
    for deterministic in (True, True, False):
        model = build_model([*overrides, f"train.deterministic={str(deterministic).lower()}"])
        same_start(model, start)
        _, seconds[deterministic] = timed_steps(model, size, o.check_iters, o.device)
        if deterministic:
            weights.append(network_arrays(model))
        del model
    a, b = weights
    differ = [k for k in a if not np.array_equal(a[k], b[k])]
    worst = max((float(np.abs(a[k] - b[k]).max()) for k in differ), default=0.0)
    result = ("pass: weights bit-equal" if not differ
              else f"FAIL: {len(differ)} of {len(a)} arrays differ (largest difference {worst:.3g})")
    from .training.determinism import configure_gpu_kernels

    configure_gpu_kernels(False)  # back to the default for the rows after this one
    return [Row("deterministic mode", f"{describe(overrides)}, batch 1, two runs of {o.check_iters} iterations "
                "from the same weights", result,
                f"{seconds[True]:.3f} (deterministic), {seconds[False]:.3f} (default)")]


def reads_rows(o: Options) -> list[Row]:
    """The step with one read of the device per iteration (D's update skipped on the device when its loss is not
    finite, the default on a GPU) against one read per optimiser step (Paddle's Adam for both, the default on a
    CPU), `o.check_iters` iterations each from the same weights: losses close, seconds per iteration of each."""
    overrides = model_overrides(o)
    size = image_size(overrides)
    start: dict[str, dict] = {}  # the first run's initial weights, for the other
    terms, seconds = {}, {}
    for one_read in (True, False):
        model = build_model(overrides, one_read=one_read)
        same_start(model, start)
        terms[one_read], seconds[one_read] = timed_steps(model, size, o.check_iters, o.device)
        del model
    worst = totals_difference(terms[True], terms[False])
    ok = worst <= AMP_TOLERANCE / 10
    return [Row("device reads per iteration", f"{describe(overrides)}, batch 1, {o.check_iters} iterations each "
                "from the same weights", f"{'pass' if ok else 'FAIL'}: totals within {worst:.2g} (relative) of "
                "each other", f"{seconds[True]:.3f} (one read), {seconds[False]:.3f} (one per optimiser step)")]


def compare_outputs(run: Callable[[np.ndarray], tuple], reference: tuple, images: np.ndarray,
                    repeats: int) -> tuple[float, float]:
    """(largest absolute difference of `run(images)`'s outputs from `reference`, median ms per image)."""
    outputs = run(images)
    diff = max(float(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)).max())
               for a, b in zip(outputs, reference))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(images)  # returns numpy: waits for the device
        times.append(time.perf_counter() - start)
    return diff, statistics.median(times) * 1000 / len(images)


def inference_verdict(diff: float) -> str:
    return f"{'pass' if diff <= INFERENCE_TOLERANCE else 'FAIL'}: outputs within {diff:.2g} of the CPU's " \
           f"(limit {INFERENCE_TOLERANCE:g})"


def onnx_row(o: Options, setting: str, export: Callable[[Path], Path], reference: tuple, images: np.ndarray,
             providers: Sequence[str] | None = None) -> Row:
    """ONNX Runtime on `o.device` against the CPU `reference`; skipped without ONNX Runtime, paddle2onnx, or
    (on a GPU) its CUDA provider. `providers` overrides `onnxruntime.get_available_providers()` (tests)."""
    from .inference.device import CUDA_PROVIDER
    from .inference.onnx import OnnxModel, OnnxUnavailableError, require

    check = f"ONNX Runtime --device {o.device}"
    try:
        available = list(providers) if providers is not None else \
            require("onnxruntime", "ONNX Runtime").get_available_providers()
        if o.device == "gpu" and CUDA_PROVIDER not in available:
            return Row(check, setting, f"skipped: ONNX Runtime here lists no {CUDA_PROVIDER} "
                                       f"({', '.join(available)}; install onnxruntime-gpu)")
        model = OnnxModel(export(images), device=o.device)
    except OnnxUnavailableError as e:
        return Row(check, setting, f"skipped: {e}")
    diff, ms = compare_outputs(model, reference, images, o.check_iters)
    return Row(check, setting, inference_verdict(diff), f"{ms:.2f} ms/image")


def inference_rows(o: Options, providers: Sequence[str] | None = None) -> list[Row]:
    """An exported generator on `o.device` through Paddle Inference and ONNX Runtime: outputs against Paddle
    Inference on the CPU, and milliseconds per image (batch 4)."""
    import paddle

    from .config import load_config
    from .inference.export import InferenceModel, export_generator
    from .inference.onnx import export_onnx
    from .models import build_networks

    overrides = model_overrides(o)
    m = load_config(None, overrides).model
    paddle.seed(0)
    generator = build_networks(m, ("genA2B",))["genA2B"]
    images = np.random.default_rng(4).uniform(-1, 1, (4, 3, m.img_size, m.img_size)).astype(np.float32)
    setting = f"{describe(overrides)} generator, batch 4, against Paddle Inference on the CPU"
    with tempfile.TemporaryDirectory() as folder:
        exported = export_generator(generator, m.img_size, Path(folder) / "paddle", "A2B", m)
        reference = InferenceModel(exported, device="cpu")(images)
        diff, ms = compare_outputs(InferenceModel(exported, device=o.device), reference, images, o.check_iters)
        rows = [Row(f"Paddle Inference --device {o.device}", setting, inference_verdict(diff), f"{ms:.2f} ms/image")]
        onnx_path = Path(folder) / "model.onnx"
        rows.append(onnx_row(o, setting, lambda _: export_onnx(generator, m.img_size, onnx_path, "A2B", m),
                             reference, images, providers))
    return rows


def rss_mib() -> float:
    """Resident memory of this process now (Linux /proc), MiB."""
    text = Path("/proc/self/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", text).group(1)) / 1024


def host_memory_after_save(small: bool = False) -> dict:
    """(In a fresh process set up as the tools are: `host_memory_rows`.) One training iteration, a checkpoint
    save; resident memory before and after the save, the process's peak, the checkpoint's size and the glibc
    allocator settings in effect."""
    from .formats import checkpoint
    from .runtime import GLIBC_MALLOC, paddle_on_cpu

    overrides = model_overrides(Options(small=small))
    model = build_model(overrides)
    device = "cpu" if paddle_on_cpu() else "gpu"
    timed_steps(model, image_size(overrides), 1, device)
    gc.collect()
    before = rss_mib()
    with tempfile.TemporaryDirectory() as folder:
        path = checkpoint.save(model.state(), Path(folder) / "checkpoint.pdparams")
        size = path.stat().st_size / 2**20
        gc.collect()
        after = rss_mib()
    return {"before": before, "after": after, "peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "checkpoint_mib": size, "allocator": {k: os.environ[k] for k in GLIBC_MALLOC if k in os.environ},
            "device": device}


def host_memory_rows(o: Options, run: Callable[..., dict] = in_fresh_process) -> list[Row]:
    """Host memory a checkpoint save leaves behind, in a fresh process: on a GPU the glibc settings are off and
    the save's peak goes back to the system."""
    r = run("host_memory_after_save", small=o.small)
    kept = r["after"] - r["before"]
    returned = kept < r["checkpoint_mib"] / 2
    settings = ", ".join(f"{k}={v}" for k, v in r["allocator"].items()) or "none"
    result = (f"{'returned' if returned else 'KEPT'}: resident {r['before']:.0f} MiB before the save, "
              f"{r['after']:.0f} MiB after (peak {r['peak']:.0f} MiB, checkpoint {r['checkpoint_mib']:.0f} MiB); "
              f"glibc allocator settings: {settings}")
    if r["device"] == "gpu":
        result = ("pass" if returned and not r["allocator"] else "FAIL") + ", " + result
    return [Row("host memory after a checkpoint save", f"{describe(model_overrides(o))}, 1 iteration on the "
                f"{r['device'].upper()}", result)]


def train_script() -> list[str]:
    """The training tool as a script for `paddle.distributed.launch`: this clone's tools/train.py, or the
    installed `ugatit-train`."""
    tool = PACKAGE_PARENT / "tools" / "train.py"
    if tool.is_file():
        return [str(tool)]
    installed = shutil.which("ugatit-train")
    if installed is None:
        raise RuntimeError("neither tools/train.py nor the ugatit-train script found")
    return [installed]


def launch_two(folder: Path, name: str, args: Sequence[str]) -> tuple[subprocess.CompletedProcess, list[str]]:
    """The training tool with `args` on 2 GPUs through `paddle.distributed.launch`; the run and worker logs."""
    logs = folder / f"{name}_logs"
    command = [sys.executable, "-m", "paddle.distributed.launch", "--devices", "0,1", "--nproc_per_node", "2",
               "--log_dir", str(logs), *train_script(), *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PADDLE_", "FLAGS_selected"))}
    run = subprocess.run(command, capture_output=True, text=True, env=env, timeout=1800)
    return run, [p.read_text(errors="replace") for p in sorted(logs.glob("workerlog.*"))]


def nccl_rows(o: Options, gpus: int | None = None) -> list[Row]:
    """On 2 GPUs (NCCL): 2 iterations, a resume to 4 (rank 0 reads the checkpoint), and a run into a folder
    whose run lock this process holds (every rank stops with the same message). `gpus` overrides the count."""
    import paddle

    from .demo.dataset import make_demo_dataset
    from .formats import checkpoint
    from .training.run_lock import run_lock

    gpus = paddle.device.cuda.device_count() if gpus is None else gpus
    overrides = model_overrides(Options(small=True))
    setting = f"2 processes x batch 1, {describe(overrides)}, paddle.distributed.launch"
    if gpus < 2:
        return [Row("NCCL resume and busy folder", setting, f"skipped: needs 2 GPUs, this machine has {gpus}")]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        make_demo_dataset(folder / "data", n_train=4, n_test=1, size=128)
        out = folder / "out"
        base = [*overrides, f"data.root={folder / 'data'}", f"output_dir={out}", "data.num_workers=0",
                "train.save_every=2", "train.sample_every=100", "train.log_every=1"]

        def args(iterations: int, *extra: str) -> list[str]:
            return [*(x for v in [*base, f"train.iterations={iterations}"] for x in ("-o", v)), *extra]

        start = time.perf_counter()
        first, logs = launch_two(folder, "first", args(2))
        resumed, logs = launch_two(folder, "resume", args(4, "--resume")) if first.returncode == 0 else (first, logs)
        seconds = time.perf_counter() - start
        ok = (first.returncode == 0 and resumed.returncode == 0 and checkpoint.checkpoint_path(out, 4).is_file()
              and bool(logs) and "resumed from" in logs[0])
        resume = ("pass: 2 iterations, resumed to 4" if ok else
                  f"FAIL: exit {first.returncode}/{resumed.returncode}; "
                  f"{(resumed.stderr or (logs[0] if logs else '')).strip()[-200:]}")
        with run_lock(out):
            busy, logs = launch_two(folder, "busy", args(6, "--resume"))
    messages = [[line for line in log.splitlines() if line.startswith("error:")] for log in logs]
    same = (busy.returncode != 0 and len(messages) == 2 and all(len(m) == 1 for m in messages)
            and messages[0] == messages[1] and "in use by another run" in messages[0][0])
    stop = ("pass: both ranks stopped with the same message" if same
            else f"FAIL: exit {busy.returncode}, error lines per rank {messages}")
    return [Row("NCCL resume", setting, resume, f"{seconds:.1f} s (both runs)"),
            Row("NCCL busy folder", setting, stop)]


def resume_memory_rows(o: Options, gpus: int | None = None, measure: Callable[..., dict] | None = None) -> list[Row]:
    """On 2 GPUs: the host memory each rank holds besides its tensors after a resume, against a fresh start
    (`measure` overrides `resume_memory.measure_resume_memory`, `gpus` the card count: tests)."""
    import paddle

    from .config import load_config
    from .resume_memory import measure_resume_memory

    gpus = paddle.device.cuda.device_count() if gpus is None else gpus
    overrides = model_overrides(o)
    setting = f"2 processes, {describe(overrides)}, paddle.distributed.launch"
    if gpus < 2:
        return [Row("NCCL resume, host memory", setting, f"skipped: needs 2 GPUs, this machine has {gpus}")]
    r = (measure or measure_resume_memory)(load_config(None, overrides), processes=2)
    others = r["extra_host_mib"][1:]
    ok = all(extra < 0.2 * r["optimizer_state_mib"] for extra in others)
    return [Row("NCCL resume, host memory", setting,
                f"{'pass' if ok else 'FAIL'}: host memory after the resume beyond a fresh start, rank 0 "
                f"{r['extra_host_mib'][0]:+.0f} MiB, other ranks {', '.join(f'{x:+.0f}' for x in others)} MiB "
                f"(optimiser state {r['optimizer_state_mib']:.0f} MiB, checkpoint {r['checkpoint_mib']:.0f} MiB)")]


ROWS: list[Callable[[Options], list[Row]]] = [
    amp_rows, memory_rows, spectral_norm_rows, fc0_rows, overflow_rows, bfloat16_rows, deterministic_rows,
    reads_rows, inference_rows, host_memory_rows, nccl_rows, resume_memory_rows,
]
"""The table's row functions, in order; each takes the options and returns its rows (add GPU checks here)."""


def row_title(make: Callable[[Options], list[Row]]) -> str:
    """'spectral norm' for `spectral_norm_rows`."""
    return make.__name__.removesuffix("_rows").replace("_", " ")


def run_rows(o: Options, rows: Sequence[Callable[[Options], list[Row]]] = ROWS,
             progress: Callable[[str], None] = lambda _: None) -> list[Row]:
    """All `rows`' rows in order; a row function that raises becomes one row with the error (`progress` is told
    each row function's title before it runs). GPU memory is released between row functions."""
    out: list[Row] = []
    for make in rows:
        progress(row_title(make))
        try:
            out += make(o)
        except Exception as e:  # any failure is a result of the check; Ctrl-C still stops the tool
            message = " ".join(f"{type(e).__name__}: {e}".split())
            out.append(Row(row_title(make), "", f"error: {message[:300]}"))
        gc.collect()
        if o.device == "gpu":
            with contextlib.suppress(Exception):
                import paddle

                paddle.device.cuda.empty_cache()
    return out


def format_table(rows: list[Row], device: str) -> str:
    """The rows as one Markdown table under a line naming the device."""
    lines = [f"GPU check on {device} (`python tools/gpu_check.py`):", "",
             "| check | setting | result | s/iteration (unless stated) |", "|---|---|---|---|"]
    lines += [f"| {r.check} | {r.setting} | {r.result.replace('|', '/')} | {r.sec_per_iter} |" for r in rows]
    return "\n".join(lines)


def gpu_name() -> str | None:
    """The first GPU's name, or None when Paddle sees no GPU (CPU build, or no device)."""
    import paddle

    if not paddle.device.is_compiled_with_cuda() or paddle.device.cuda.device_count() == 0:
        return None
    return paddle.device.cuda.get_device_name(0)
