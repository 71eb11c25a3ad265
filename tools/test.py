"""Translate the test sets with a trained checkpoint: testA -> B and testB -> A. The command is ugatit_paddle/commands/test.py (installed: ugatit-test)."""

import sys

import _clone  # noqa: F401  (this clone's ugatit_paddle first on the path)
from ugatit_paddle.commands.test import main

if __name__ == "__main__":
    sys.exit(main())
