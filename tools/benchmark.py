"""Measure training speed, inference latency and peak memory on synthetic inputs (no dataset needed). The command is ugatit_paddle/commands/benchmark.py (installed: ugatit-benchmark)."""

import sys

import _clone  # noqa: F401  (this clone's ugatit_paddle first on the path)
from ugatit_paddle.commands.benchmark import main

if __name__ == "__main__":
    sys.exit(main())
