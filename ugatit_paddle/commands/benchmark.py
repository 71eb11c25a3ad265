"""Measure training speed, inference latency and peak memory on synthetic inputs (no dataset needed).

    python tools/benchmark.py -c configs/selfie2anime_light.yaml --iters 5
    python tools/benchmark.py -c configs/selfie2anime_light.yaml -o model.ch=32 -o model.img_size=128 --json
    python tools/benchmark.py -c configs/selfie2anime_light.yaml -o model.ch=32 -o model.img_size=128 --profile
    python tools/benchmark.py -c configs/selfie2anime_16gb.yaml -o model.ch=64 --memory
    python tools/benchmark.py -c configs/selfie2anime_light.yaml -o model.ch=32 --resume-memory

Reports seconds per training iteration with train.reuse_fakes on and off (interleaved, same networks) and
their ratio, images per second, the rate of work (the official iteration's FLOPs, counted from the layer shapes,
per second of the configured step) beside the peak of one 2048x2048 float32 matrix product on the same threads,
generator inference latency (eager; exported to Paddle Inference with
and without oneDNN, and to ONNX Runtime when paddle2onnx and onnxruntime are installed) and the peak memory
(resident set on CPU, allocator peak on GPU), as a Markdown table (the default, --markdown; ready to paste into
the README with the command that made it) or one JSON line (--json).
--memory instead measures only the peak memory of --iters (default 2) training iterations with the configured
settings (train.recompute: configs/selfie2anime_16gb.yaml), as one row of the README's memory table (with what the
weights and Adam state take alone and the smallest card it fits) or JSON; run it alone, it measures this process.
--resume-memory instead resumes a checkpoint of the model (written after one step) in --processes (default 2)
processes started by paddle.distributed.launch (on GPUs when there are enough, else on the CPU), and starts it
fresh, and reports each process's host memory
(resident set minus its tensors: what stays on the host when they are on a GPU) and resident peaks after building,
resuming and one step, against the checkpoint's size and its optimiser state's (ugatit_paddle/resume_memory.py).
--profile instead prints paddle.profiler's summary of --iters training iterations: where the time goes, op by op.
CPU defaults (threads, MKL path, allocator) come from ugatit_paddle/runtime.py; variables you export win.
Exit status: 0 done, 2 bad configuration.
"""

import argparse
import json
import shlex
import sys

from ugatit_paddle.benchmark import (
    MEMORY_ITERATIONS, MEMORY_TABLE_HEADER, TIMED_ITERATIONS, WARMUP_ITERATIONS, format_markdown, format_memory_row,
    measure_memory, profile_training, run_benchmark,
)
from ugatit_paddle import cli
from ugatit_paddle.resume_memory import format_summary, measure_resume_memory
from ugatit_paddle.config import load_config
from ugatit_paddle.inference.device import DeviceUnavailableError, add_device_argument, use_device


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_config_arguments(parser, "model.ch=32")
    parser.add_argument("--iters", type=int, default=None,
                        help=f"timed iterations per setting (default {TIMED_ITERATIONS}; "
                             f"--memory: {MEMORY_ITERATIONS})")
    parser.add_argument("--warmup", type=int, default=WARMUP_ITERATIONS,
                        help="untimed iterations first (default %(default)s)")
    parser.add_argument("--no-export", action="store_true",
                        help="skip the exported-model (Paddle Inference, ONNX Runtime) timing")
    output = parser.add_mutually_exclusive_group()
    output.add_argument("--markdown", action="store_true", help="print a Markdown table (the default)")
    output.add_argument("--json", action="store_true", help="print the figures as one JSON line")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--profile", action="store_true",
                      help="print paddle.profiler's operator summary of --iters training iterations instead")
    mode.add_argument("--memory", action="store_true",
                      help="measure only the peak memory of --iters training iterations, as a README table row")
    mode.add_argument("--resume-memory", action="store_true",
                      help="measure each process's host memory when resuming on --processes CPU processes")
    parser.add_argument("--processes", type=int, default=2,
                        help="--resume-memory: data-parallel processes (default %(default)s)")
    add_device_argument(parser)
    a = parser.parse_args(argv)
    if a.iters is None:
        a.iters = MEMORY_ITERATIONS if a.memory else TIMED_ITERATIONS
    if a.iters < 1 or a.warmup < 0:
        parser.error("--iters must be >= 1 and --warmup >= 0")
    if a.processes < 2:
        parser.error("--processes must be >= 2")

    def work() -> int:
        cfg = load_config(a.config, a.override)
        use_device(a.device)
        if a.profile:
            profile_training(cfg, iters=a.iters, warmup=a.warmup)
            return cli.EXIT_OK
        if a.resume_memory:
            result = measure_resume_memory(cfg, processes=a.processes)
            print(json.dumps(result) if a.json else format_summary(result))
            return cli.EXIT_OK
        if a.memory:
            result = measure_memory(cfg, iters=a.iters)
            print(json.dumps(result) if a.json else f"{MEMORY_TABLE_HEADER}\n{format_memory_row(result)}")
            return cli.EXIT_OK
        result = run_benchmark(cfg, iters=a.iters, warmup=a.warmup, exported=not a.no_export)
        command = shlex.join(["python", "tools/benchmark.py", *sys.argv[1:]])
        print(json.dumps(result) if a.json else format_markdown(result, command))
        return cli.EXIT_OK

    return cli.run(work, usage=(DeviceUnavailableError,))


if __name__ == "__main__":
    sys.exit(main())
