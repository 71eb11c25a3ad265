"""Record a parity bundle from a clone of the official code; see ugatit_paddle/commands/record_bundle.py."""

import sys

import _clone  # noqa: F401  (makes ugatit_paddle importable from an uninstalled clone; CPU set-up)
from ugatit_paddle.commands.record_bundle import main

if __name__ == "__main__":
    sys.exit(main())
