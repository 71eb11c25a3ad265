"""Side-by-side speed and memory: this project against the official PyTorch code (ugatit_paddle/parity/speed.py).

Opt-in measurement (needs PyTorch and a clone of UGATIT-pytorch, whose networks.py it imports):

    python tools/compare_official.py --torch-src ~/UGATIT-pytorch                   # training speed, light ch 32 img 128
    python tools/compare_official.py --torch-src ~/UGATIT-pytorch --inference --rounds 3
    python tools/compare_official.py --torch-src ~/UGATIT-pytorch --memory --full --img-size 256 --ch 64

Training speed: both in one process on the same random images, iterations interleaved (official, ours with
reuse_fakes on, ours with it off, ...), medians after warm-up, ratios as medians of each round's ratio.
Inference (--inference): generator latency for one image, official eager against ours eager and exported
(plain CPU and oneDNN), each run alone in a fresh process per round. Memory (--memory): each implementation in
its own fresh process, peak RSS over --iters training iterations. Both sides use the same number of threads
(OMP_NUM_THREADS as set up by ugatit_paddle/runtime.py, or yours). The official iteration is the one the
parity checks run (ugatit_paddle/parity/official_torch.py).
Exit status: 0 done, 2 bad usage (no networks.py in --torch-src).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from ugatit_paddle.parity import speed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--torch-src", required=True, help="folder with the official networks.py (UGATIT-pytorch clone)")
    defaults = speed.Setup  # its field defaults are this tool's defaults
    parser.add_argument("--img-size", type=int, default=defaults.img_size, help="default %(default)s")
    parser.add_argument("--ch", type=int, default=defaults.ch, help="default %(default)s")
    parser.add_argument("--n-res", type=int, default=defaults.n_res, help="default %(default)s")
    parser.add_argument("--full", action="store_true", help="full model (default: light)")
    parser.add_argument("--batch", type=int, default=defaults.batch, help="default %(default)s")
    parser.add_argument("--iters", type=int, default=defaults.iters,
                        help="timed iterations per implementation (memory: iterations run; default %(default)s)")
    parser.add_argument("--warmup", type=int, default=defaults.warmup, help="default %(default)s")
    parser.add_argument("--memory", action="store_true", help="peak RSS, each implementation in a fresh process")
    parser.add_argument("--inference", action="store_true", help="generator inference latency instead of training")
    parser.add_argument("--rounds", type=int, default=3, help="--inference: rounds of fresh processes (default 3)")
    parser.add_argument("--only", choices=speed.TRAINING_RUNS, help=argparse.SUPPRESS)
    parser.add_argument("--only-inference", choices=speed.INFERENCE_RUNS, help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    a = parser.parse_args(argv)
    if not speed.clone_has_networks(a.torch_src):
        parser.error(f"--torch-src {a.torch_src} has no networks.py (clone UGATIT-pytorch)")
    setup = speed.Setup(a.torch_src, a.img_size, a.ch, a.n_res, not a.full, a.batch, a.iters, a.warmup,
                        threads=int(os.environ.get("OMP_NUM_THREADS", "1")))
    worker = [sys.executable, __file__, *sys.argv[1:]]  # this command again, in a fresh process
    if a.only:
        print(json.dumps(speed.memory_of(a.only, setup)))
        return 0
    if a.only_inference:
        print(json.dumps(speed.inference_times(a.only_inference, setup)))
        return 0
    if a.memory:
        result = {"config": vars(a), **speed.compare_memory(worker)}
    elif a.inference:
        result = {"config": vars(a), "threads": setup.threads, **speed.compare_inference(a.rounds, worker)}
    else:
        result = {"config": vars(a), **speed.compare_training_speed(setup)}
    if a.json:
        print(json.dumps(result))
        return 0
    print(json.dumps({k: v for k, v in result.items() if k != "all_times"}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
