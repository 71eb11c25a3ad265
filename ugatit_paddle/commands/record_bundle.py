"""Record a parity bundle by running the unmodified official UGATIT-pytorch code (needs torch and a clone).

The bundle is the folder `tools/parity.py --bundle` reads: the official networks' random initial weights
(seeded), one batch, the eval outputs of the six networks, STEPS official training iterations (their D and G
losses), the weights and eval outputs after them, and reference.json with the settings, the torch version, the
clone's commit, the limits of the dtype and how they were calibrated (the official code rerun with another
thread count is measured and stored beside them). The bundles in tests/fixtures were recorded with it:
    python tools/record_bundle.py --torch-src ~/UGATIT-pytorch --out tests/fixtures/light_32_ch4_f64 \\
        --img-size 32 --ch 4 --n-res 2 --light --global-layers 5 --local-layers 4 --steps 3
Check a bundle with: python tools/parity.py --bundle DIR --steps STEPS
Exit status: 0 written, 1 the recording failed, 2 bad usage (no torch, not a clone, folder not empty, ...).
"""

from __future__ import annotations

import argparse
import shlex
import sys

from ugatit_paddle import cli
from ugatit_paddle.config import ModelConfig
from ugatit_paddle.parity import TorchUnavailable
from ugatit_paddle.parity.record import BUNDLE_FILES, Recording, record_bundle


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--torch-src", required=True, help="clone of UGATIT-pytorch (its networks.py is run)")
    parser.add_argument("--out", required=True, help="new folder to write the bundle into")
    parser.add_argument("--img-size", type=int, required=True, help="image size (>= what the discriminators take)")
    parser.add_argument("--ch", type=int, required=True, help="base channel count of every network")
    parser.add_argument("--n-res", type=int, default=ModelConfig.n_res, help=f"residual blocks (default {ModelConfig.n_res})")
    parser.add_argument("--light", action="store_true", help="the light generator")
    parser.add_argument("--global-layers", type=int, default=ModelConfig.global_layers,
                        help=f"depth of disGA/disGB (official {ModelConfig.global_layers}, which needs img_size >= 96)")
    parser.add_argument("--local-layers", type=int, default=ModelConfig.local_layers,
                        help=f"depth of disLA/disLB (official {ModelConfig.local_layers})")
    parser.add_argument("--batch", type=int, default=1, help="images per domain (default 1)")
    parser.add_argument("--steps", type=int, default=3, help="official training iterations to record (default 3)")
    parser.add_argument("--dtype", choices=("float64", "float32"), default="float64",
                        help="arithmetic of the official run (default float64: the whole trajectory is comparable)")
    parser.add_argument("--seed", type=int, default=0, help="torch seed of the initial weights and the batch")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads for the recording (default 2)")
    parser.add_argument("--rerun-threads", type=int, default=1,
                        help="rerun the official code with this many threads and store its spread (default 1)")
    parser.add_argument("--no-rerun", action="store_true", help="skip the rerun (no measured spread stored)")
    a = parser.parse_args(argv)
    recording = Recording(img_size=a.img_size, ch=a.ch, n_res=a.n_res, light=a.light, global_layers=a.global_layers,
                          local_layers=a.local_layers, batch=a.batch, steps=a.steps, dtype=a.dtype, seed=a.seed)
    command = shlex.join(["ugatit-record-bundle", *(sys.argv[1:] if argv is None else argv)])

    def work() -> int:
        out = record_bundle(a.torch_src, a.out, recording, threads=a.threads,
                            rerun_threads=None if a.no_rerun else a.rerun_threads, command=command)
        print(f"wrote {out}: {', '.join(BUNDLE_FILES)}")
        print(f"check it with: python tools/parity.py --bundle {out} --steps {a.steps}")
        return cli.EXIT_OK

    return cli.run(work, failures=(OSError, RuntimeError), usage=(TorchUnavailable, ValueError))


if __name__ == "__main__":
    sys.exit(main())
