"""The CPU demo: generate the procedural dataset, train a tiny U-GAT-IT and print its translation score. The command is ugatit_paddle/commands/demo.py (installed: ugatit-demo)."""

import sys

import _clone  # noqa: F401  (this clone's ugatit_paddle first on the path)
from ugatit_paddle.commands.demo import main

if __name__ == "__main__":
    sys.exit(main())
