"""Get released weights in one command; see ugatit_paddle/commands/pretrained.py (installed: ugatit-pretrained)."""

import sys

import _clone  # noqa: F401  (this clone's ugatit_paddle first on the path)
from ugatit_paddle.commands.pretrained import main

if __name__ == "__main__":
    sys.exit(main())
