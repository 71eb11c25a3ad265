"""Prove numerical agreement with the official UGATIT-pytorch code. The command is ugatit_paddle/commands/parity.py (installed: ugatit-parity)."""

import sys

import _clone  # noqa: F401  (this clone's ugatit_paddle first on the path)
from ugatit_paddle.commands.parity import main

if __name__ == "__main__":
    sys.exit(main())
