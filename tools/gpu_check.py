"""The GPU-only claims of the README measured on a GPU machine, as one Markdown table. The command is ugatit_paddle/commands/gpu_check.py (installed: ugatit-gpu-check)."""

import sys

import _clone  # noqa: F401  (this clone's ugatit_paddle first on the path)
from ugatit_paddle.commands.gpu_check import main

if __name__ == "__main__":
    sys.exit(main())
