"""The CPU demo: generate the procedural dataset, train a tiny U-GAT-IT and print its translation score.

    python tools/demo.py                                   # configs/demo.yaml: a few minutes on 2 CPU cores
    python tools/demo.py -o train.iterations=100 -o output_dir=work/demo_short
    python tools/demo.py --time-limit 300                  # stop training after 5 minutes whatever the config

Writes the dataset to data.root (work/demo_data), sample sheets to output_dir/samples, the translated test
images to output_dir/demo_translations and the scores to output_dir/demo_result.json (output_dir: work/demo).
The score is DomainScorer's (ugatit_paddle/demo/dataset.py): P(looks like B) of real testA, real testB and
genA2B(testA) (untrained and trained), and P(looks like A) of genB2A(testB).

Exit status: 0 done, 130 training stopped by SIGINT (the scores are still printed), 2 bad configuration,
1 other errors.
"""

import argparse
import sys

from ugatit_paddle import cli
from ugatit_paddle.data import DataError
from ugatit_paddle.demo import DEFAULT_CONFIG, DemoError, run_demo
from ugatit_paddle.demo.dataset import N_TEST, N_TRAIN
from ugatit_paddle.formats.checkpoint import CheckpointError
from ugatit_paddle.training.loop import StopReason
from ugatit_paddle.training.ugatit import NonFiniteLossError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_config_arguments(parser, "train.iterations=100", f"YAML config (default {DEFAULT_CONFIG})", DEFAULT_CONFIG)
    parser.add_argument("--n-train", type=int, default=N_TRAIN, metavar="N",
                        help=f"generated training images per domain (default {N_TRAIN})")
    parser.add_argument("--n-test", type=int, default=N_TEST, metavar="N",
                        help=f"generated held-out test images per domain (default {N_TEST})")
    parser.add_argument("--data-seed", type=int, default=0, metavar="S", help="seed of the generated dataset")
    parser.add_argument("--time-limit", type=float, default=540.0, metavar="SECONDS",
                        help="stop training after this long even if train.iterations is not reached "
                             "(default 540, keeping the whole demo under 10 minutes; 0 = no limit)")
    a = parser.parse_args(argv)

    def work() -> int:
        result = run_demo(a.config, a.override, n_train=a.n_train, n_test=a.n_test, data_seed=a.data_seed,
                          time_limit=a.time_limit if a.time_limit > 0 else None)
        return cli.EXIT_INTERRUPTED if result.interrupted is StopReason.SIGINT else cli.EXIT_OK

    return cli.run(work, failures=(DataError, DemoError, CheckpointError, NonFiniteLossError, ValueError, OSError))


if __name__ == "__main__":
    sys.exit(main())
