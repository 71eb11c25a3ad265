"""On a machine with a GPU: measure each GPU-only claim of the README's "Training on GPUs" (mixed precision against
float32, peak GPU memory and speed of the memory table with and without recomputation, spectral-norm host copies,
FC.0 in float32 under AMP, overflowed steps at the initial loss scale, bfloat16, deterministic mode, Paddle
Inference and ONNX Runtime on CUDA, host memory after a save, NCCL resume and busy folder) and print them as one
Markdown table for the README. The checks are `ugatit_paddle/gpu_check.py`'s `ROWS`; one that fails becomes a row
with its error.

    python tools/gpu_check.py               # ch 64, batch 1, 2 iterations per memory configuration
    python tools/gpu_check.py --iters 3 --amp-iters 5 --check-iters 6 --overflow-iters 50

On a machine without a GPU it prints one line and exits with status 2.
"""

from __future__ import annotations

import argparse
import sys

from .. import cli
from ..gpu_check import Options, format_table, gpu_name, run_rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iters", type=int, default=Options.iters, help="training iterations per memory configuration")
    parser.add_argument("--amp-iters", type=int, default=Options.amp_iters, help="iterations of the AMP comparison")
    parser.add_argument("--check-iters", type=int, default=Options.check_iters,
                        help="iterations of the deterministic, bfloat16 and timing checks")
    parser.add_argument("--overflow-iters", type=int, default=Options.overflow_iters,
                        help="iterations of the initial loss-scale comparison")
    a = parser.parse_args(argv)
    if min(a.iters, a.amp_iters, a.check_iters, a.overflow_iters) < 1:
        parser.error("--iters, --amp-iters, --check-iters and --overflow-iters must be >= 1")
    device = gpu_name()
    if device is None:
        print("gpu_check: no GPU visible to Paddle (CPU build or no device); run it on a machine with a GPU",
              file=sys.stderr)
        return cli.EXIT_USAGE

    def work() -> int:
        options = Options(iters=a.iters, amp_iters=a.amp_iters, check_iters=a.check_iters,
                          overflow_iters=a.overflow_iters)
        rows = run_rows(options, progress=lambda title: print(f"gpu_check: {title} ...", file=sys.stderr))
        print(format_table(rows, device))
        return cli.EXIT_OK

    return cli.run(work)


if __name__ == "__main__":
    sys.exit(main())
