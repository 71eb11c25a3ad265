"""Train U-GAT-IT.

    python tools/train.py -c configs/selfie2anime.yaml
    python tools/train.py -c configs/selfie2anime.yaml -o train.batch_size=2 -o output_dir=work/run2
    python tools/train.py -c configs/selfie2anime.yaml --resume            # latest checkpoint in output_dir
    python tools/train.py -c configs/selfie2anime.yaml --resume PATH --stop-after 20000

Ctrl-C (SIGINT) or SIGTERM saves a checkpoint and exits; --resume continues exactly.
Data parallel over N processes (GPUs, or CPU processes with gloo), train.batch_size images per process:
    python -m paddle.distributed.launch --nproc_per_node N tools/train.py -c configs/selfie2anime.yaml
train.amp=true (mixed precision) needs a GPU; on a CPU it is refused with exit status 2.
One run per output_dir: a second run on a folder in use stops at once with exit status 2, naming the process.
CPU defaults (threads, MKL path on AMD, malloc) come from ugatit_paddle/runtime.py; variables you export win.
Exit status: 0 done, 130 stopped by SIGINT, 2 bad configuration, 1 other errors.
"""

import argparse
import sys
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a clone without installing

from ugatit_paddle.runtime import configure_cpu  # noqa: E402  (before paddle is imported)

configure_cpu()

from ugatit_paddle.formats.checkpoint import CheckpointError
from ugatit_paddle.config import ConfigError, load_config
from ugatit_paddle.data import DataError
from ugatit_paddle.training.loop import Trainer
from ugatit_paddle.training.run_lock import RunLockedError
from ugatit_paddle.training.ugatit import NonFiniteLossError


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-c", "--config", help="YAML config (keys missing from it take the official defaults)")
    parser.add_argument("-o", "--override", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. -o train.iterations=1000 (repeatable)")
    parser.add_argument("--resume", nargs="?", const=True, default=False, metavar="PATH",
                        help="continue from the latest checkpoint in output_dir, or from PATH")
    parser.add_argument("--stop-after", type=int, metavar="N", help="stop at iteration N with a checkpoint")
    a = parser.parse_args()
    try:
        cfg = load_config(a.config, a.override)
    except ConfigError as e:
        print(f"config error: {e}", file=sys.stderr)
        return 2
    try:
        trainer = Trainer(cfg)
    except ConfigError as e:  # e.g. train.amp on a machine without a GPU
        print(f"config error: {e}", file=sys.stderr)
        return 2
    try:
        trainer.train(resume=a.resume, stop_after=a.stop_after)
    except RunLockedError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (DataError, CheckpointError, NonFiniteLossError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 130 if trainer.interrupted == "SIGINT" else 0


if __name__ == "__main__":
    sys.exit(main())
