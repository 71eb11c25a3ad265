"""Side-by-side speed and memory: this project against the official PyTorch code (ugatit_paddle/parity/speed.py). The command is ugatit_paddle/commands/compare_official.py (installed: ugatit-compare-official)."""

import sys

import _clone  # noqa: F401  (this clone's ugatit_paddle first on the path)
from ugatit_paddle.commands.compare_official import main

if __name__ == "__main__":
    sys.exit(main())
