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

from ugatit_paddle import cli
from ugatit_paddle.config import load_config
from ugatit_paddle.data import DataError
from ugatit_paddle.formats.checkpoint import CheckpointError
from ugatit_paddle.training.loop import StopReason, Trainer
from ugatit_paddle.training.run_lock import RunLockedError
from ugatit_paddle.training.ugatit import NonFiniteLossError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_config_arguments(parser, "train.iterations=1000")
    parser.add_argument("--resume", nargs="?", const=True, default=False, metavar="PATH",
                        help="continue from the latest checkpoint in output_dir, or from PATH")
    parser.add_argument("--stop-after", type=int, metavar="N", help="stop at iteration N with a checkpoint")
    a = parser.parse_args(argv)

    def work() -> int:
        trainer = Trainer(load_config(a.config, a.override))  # ConfigError also for train.amp without a GPU
        trainer.train(resume=a.resume, stop_after=a.stop_after)
        return cli.EXIT_INTERRUPTED if trainer.interrupted is StopReason.SIGINT else cli.EXIT_OK

    return cli.run(work, failures=(DataError, CheckpointError, NonFiniteLossError, OSError), usage=(RunLockedError,))


if __name__ == "__main__":
    sys.exit(main())
