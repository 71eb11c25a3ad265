"""Prove numerical agreement with the official UGATIT-pytorch code.

Bundle mode (no PyTorch needed): a parity bundle recorded from the official code
    python tools/parity.py --bundle ../shared/fixtures/official/light_128_ch8 [--steps 3]
Live mode (needs torch and a clone of UGATIT-pytorch): run both side by side
    python tools/parity.py --torch-ckpt official.pt --torch-src ~/UGATIT-pytorch [--images DIR]
The official code against its own recording (needs torch and the clone; shows how reproducible a bundle is):
    python tools/parity.py --bundle DIR --official-rerun --torch-src ~/UGATIT-pytorch [--threads 1]
Float32 precision of the generator, eager and exported, against a float64 evaluation (official too with --torch-src):
    python tools/parity.py --float64 --img-size 256 --ch 64 --light [--torch-src ~/UGATIT-pytorch]
Exit status: 0 all within tolerance, 1 some value outside, 2 bad usage.
"""

import argparse
import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from ugatit_paddle.runtime import configure_cpu  # noqa: E402  (before paddle is imported)

configure_cpu()

from ugatit_paddle import parity


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", help="folder of a parity bundle (reference.json, init_params.pt, ...)")
    parser.add_argument("--steps", type=int, default=0, help="also run K training iterations (bundle mode)")
    parser.add_argument("--torch-ckpt", help="official checkpoint for live mode")
    parser.add_argument("--torch-src", help="folder with the official networks.py (live mode)")
    parser.add_argument("--images", help="folder of images to feed in live mode (default: random inputs)")
    parser.add_argument("--img-size", type=int, help="image size for light checkpoints in live mode")
    parser.add_argument("--official-rerun", action="store_true",
                        help="bundle mode: rerun the official code (torch) through the bundle's steps instead of ours")
    parser.add_argument("--threads", type=int, help="torch threads for --official-rerun")
    parser.add_argument("--float64", action="store_true", help="float32 vs float64 check of a random generator")
    parser.add_argument("--ch", type=int, default=64, help="generator width for --float64")
    parser.add_argument("--n-res", type=int, default=4, help="residual blocks for --float64")
    parser.add_argument("--light", action="store_true", help="light generator for --float64")
    parser.add_argument("--train-forwards", type=int, default=3,
                        help="train-mode forwards per network in live mode (power iterations advance)")
    a = parser.parse_args()
    if a.float64 + bool(a.bundle) + bool(a.torch_ckpt) != 1:
        parser.error("give one of --bundle DIR, --torch-ckpt FILE --torch-src DIR, or --float64")
    try:
        if a.float64:
            args = parity.ModelArgs(img_size=a.img_size or 256, ch=a.ch, n_res=a.n_res, light=a.light)
            rows = parity.precision_check(args, torch_src=a.torch_src)
        elif a.bundle and a.official_rerun:
            if not a.torch_src:
                parser.error("--official-rerun needs --torch-src (a clone of UGATIT-pytorch with networks.py)")
            rows = parity.official_rerun(a.bundle, a.torch_src, threads=a.threads)
        elif a.bundle:
            rows = parity.bundle_parity(a.bundle, steps=a.steps)
        else:
            if not a.torch_src:
                parser.error("live mode needs --torch-src (a clone of UGATIT-pytorch with networks.py)")
            rows = parity.live_parity(a.torch_ckpt, a.torch_src, images=a.images, img_size=a.img_size,
                                      train_forwards=a.train_forwards)
    except parity.TorchUnavailable as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (OSError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(parity.format_table(rows))
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
