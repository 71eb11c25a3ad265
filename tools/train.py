"""Train U-GAT-IT. The command is ugatit_paddle/commands/train.py (installed: ugatit-train)."""

import sys

import _clone  # noqa: F401  (this clone's ugatit_paddle first on the path)
from ugatit_paddle.commands.train import main

if __name__ == "__main__":
    sys.exit(main())
