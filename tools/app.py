"""A page in the browser to try a model on your photo; see ugatit_paddle/commands/app.py (installed: ugatit-app)."""

import sys

import _clone  # noqa: F401  (this clone's ugatit_paddle first on the path)
from ugatit_paddle.commands.app import main

if __name__ == "__main__":
    sys.exit(main())
