"""On a machine with a GPU: mixed precision against float32, peak GPU memory and speed of the README's memory-table
configurations with and without recomputation, printed as one Markdown table for the README.

    python tools/gpu_check.py               # ch 64, batch 1, 2 iterations per memory configuration
    python tools/gpu_check.py --iters 3 --amp-iters 5

Rows (`ROWS`, one function each, in order):
- AMP O1 against float32: the same seeds and batches, `--amp-iters` iterations of the light model (ch 32, 128 px);
  every loss finite, D/total and G/total within `AMP_TOLERANCE` (relative), and seconds per iteration of each;
- peak GPU memory (`paddle.device.cuda.max_memory_allocated`) and seconds per iteration of light and full, 128 and
  256 px, ch 64, batch 1, `train.recompute` off and on: each in a fresh process (`tools/benchmark.py --memory
  --json`), so that every peak is its own.
On a machine without a GPU it prints one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .. import cli

AMP_TOLERANCE = 0.05  # relative difference of the first iterations' totals, float16 against float32
MEMORY_CONFIGS = [(light, size) for light in (True, False) for size in (128, 256)]  # the README's memory table


@dataclass
class Row:
    """One line of the table."""

    check: str
    setting: str
    result: str
    sec_per_iter: str = ""


@dataclass
class Options:
    iters: int  # training iterations per memory configuration
    amp_iters: int  # iterations of the AMP comparison


def amp_rows(o: Options) -> list[Row]:
    """AMP O1 and float32 from the same initial weights on the same batches: losses finite and close."""
    import paddle

    from ..benchmark import synthetic_images
    from ..config import load_config
    from ..training.ugatit import UGATIT

    setting = f"light, 128 px, ch 32, batch 1, {o.amp_iters} iterations"
    real_A, real_B = synthetic_images(1, 128, seed=1), synthetic_images(1, 128, seed=2)
    terms: dict[bool, list[dict[str, float]]] = {}
    seconds: dict[bool, float] = {}
    for amp in (False, True):
        cfg = load_config(None, ["model.light=true", "model.img_size=128", "model.ch=32", f"train.amp={amp}"])
        model = UGATIT(cfg)
        model.set_train_mode(True)
        times = []
        terms[amp] = []
        for _ in range(o.amp_iters):
            start = time.perf_counter()
            terms[amp].append(model.step(real_A, real_B))
            paddle.device.cuda.synchronize()
            times.append(time.perf_counter() - start)
        seconds[amp] = statistics.median(times[1:] or times)
    finite = all(math.isfinite(v) for step in terms[True] for v in step.values())
    worst = max(abs(a[k] - b[k]) / max(abs(b[k]), 1e-12)
                for a, b in zip(terms[True], terms[False]) for k in ("D/total", "G/total"))
    verdict = "pass" if finite and worst <= AMP_TOLERANCE else "FAIL"
    result = (f"{verdict}: losses {'finite' if finite else 'NOT finite'}, D/total and G/total within "
              f"{worst:.1%} of float32 (limit {AMP_TOLERANCE:.0%})")
    return [Row("AMP O1 vs float32", setting, result,
                f"{seconds[True]:.3f} (AMP), {seconds[False]:.3f} (float32)")]


def memory_rows(o: Options, run_json: Callable[[list[str]], dict] | None = None) -> list[Row]:
    """Peak GPU memory and speed per `MEMORY_CONFIGS` entry, recompute off and on, each in a fresh process."""
    run_json = run_json or _benchmark_json
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


def _benchmark_json(args: list[str]) -> dict:
    """tools/benchmark.py `args` in a fresh process; its JSON line, or RuntimeError with its last error line."""
    tool = Path(__file__).resolve().parents[2] / "tools" / "benchmark.py"
    target = [str(tool)] if tool.is_file() else ["-m", "ugatit_paddle.commands.benchmark"]  # clone or installed
    run = subprocess.run([sys.executable, *target, *args], capture_output=True, text=True)
    if run.returncode != 0:
        lines = (run.stderr or run.stdout).strip().splitlines() or [f"exit status {run.returncode}"]
        raise RuntimeError(lines[-1][:300])
    return json.loads(run.stdout.strip().splitlines()[-1])


ROWS: list[Callable[[Options], list[Row]]] = [amp_rows, memory_rows]
"""The table's row functions, in order; each takes the options and returns its rows (add GPU checks here)."""


def format_table(rows: list[Row], device: str) -> str:
    """The rows as one Markdown table under a line naming the device."""
    lines = [f"GPU check on {device} (`python tools/gpu_check.py`):", "",
             "| check | setting | result | s/iteration |", "|---|---|---|---|"]
    lines += [f"| {r.check} | {r.setting} | {r.result.replace('|', '/')} | {r.sec_per_iter} |" for r in rows]
    return "\n".join(lines)


def gpu_name() -> str | None:
    """The first GPU's name, or None when Paddle sees no GPU (CPU build, or no device)."""
    import paddle

    if not paddle.device.is_compiled_with_cuda() or paddle.device.cuda.device_count() == 0:
        return None
    return paddle.device.cuda.get_device_name(0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iters", type=int, default=2, help="training iterations per memory configuration")
    parser.add_argument("--amp-iters", type=int, default=3, help="iterations of the AMP comparison")
    a = parser.parse_args(argv)
    if a.iters < 1 or a.amp_iters < 1:
        parser.error("--iters and --amp-iters must be >= 1")
    device = gpu_name()
    if device is None:
        print("gpu_check: no GPU visible to Paddle (CPU build or no device); run it on a machine with a GPU",
              file=sys.stderr)
        return cli.EXIT_USAGE

    def work() -> int:
        options = Options(iters=a.iters, amp_iters=a.amp_iters)
        rows = [row for make in ROWS for row in make(options)]
        print(format_table(rows, device))
        return cli.EXIT_OK

    return cli.run(work)


if __name__ == "__main__":
    sys.exit(main())
